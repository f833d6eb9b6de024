"""tfc_runtime: load a model compiled by tfcompiler and run it with onnxruntime (CPU, or CUDA with
a fallback to CPU), generate text with a compiled decoder and mel frames with a text-to-speech model, and act in an
environment with a compiled Decision Transformer. Needs only onnxruntime and numpy, so deployments can install it
alone."""
from .acting import Actor
from .generation import Generation, Generator
from .generation_frames import Speech, generate_speech
from .recurrence import Segments
from .session import Model, random_inputs

__all__ = ["Actor", "Generation", "Generator", "Model", "Segments", "Speech", "generate_speech", "random_inputs"]
