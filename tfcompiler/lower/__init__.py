"""Lower stage: IR -> ONNX, and writing the result."""
from .serialize import LoweredModel
from .to_onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, to_onnx

__all__ = ["to_onnx", "LoweredModel", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET"]
