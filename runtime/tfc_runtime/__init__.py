"""tfc_runtime: load a model compiled by tfcompiler and run it with onnxruntime (CPU, or CUDA with
a fallback to CPU). Needs only onnxruntime and numpy, so deployments can install it alone."""
from .recurrence import Segments
from .session import Model, random_inputs

__all__ = ["Model", "Segments", "random_inputs"]
