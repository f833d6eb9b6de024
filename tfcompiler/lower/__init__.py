"""Lower stage: IR -> ONNX, and writing the result.

Each lowering module registers the IR ops it lowers in lower/registry.py's table (`@lowers(...)`);
importing every module of the package here fills the table before anything lowers, so a new
lowering is its own file and no import list names it.
"""
from ..submodules import import_submodules
from .serialize import LoweredModel
from .to_onnx import MAX_OPSET, MIN_OPSET, default_opset, to_onnx

import_submodules(__name__, __path__)  # each lowering module registers the IR ops it lowers

__all__ = ["to_onnx", "LoweredModel", "default_opset", "MIN_OPSET", "MAX_OPSET"]
