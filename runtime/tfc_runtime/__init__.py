"""tfc_runtime: load a model compiled by tfcompiler and run it with onnxruntime (CPU, or CUDA with
a fallback to CPU), generate text with a compiled decoder and mel frames with a text-to-speech model.
Needs only onnxruntime and numpy, so deployments can install it alone."""
from .generation import Generation, Generator
from .generation_frames import Speech, generate_speech
from .recurrence import Segments
from .session import Model, random_inputs

__all__ = ["Generation", "Generator", "Model", "Segments", "Speech", "generate_speech", "random_inputs"]
