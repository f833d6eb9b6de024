"""tfc_runtime: load a model compiled by tfcompiler and run it with onnxruntime (CPU, or CUDA with
a fallback to CPU), and generate text with a compiled decoder. Needs only onnxruntime and numpy, so
deployments can install it alone."""
from .generation import Generation, Generator
from .recurrence import Segments
from .session import Model, random_inputs

__all__ = ["Generation", "Generator", "Model", "Segments", "random_inputs"]
