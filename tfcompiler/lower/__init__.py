"""Lower stage: IR -> ONNX, and writing the result.

Each lowering module registers the IR ops it lowers in lower/registry.py's table (`@lowers(...)`);
importing them here fills the table before anything lowers.
"""
from . import (attention, blocked, content_sparse, conv, dense_attention, elementwise, favor,  # noqa: F401
               linear_attention, masks, norms, positions, prob_sparse, quantized, recurrent, reductions, resample,
               star, tensor, token_chunks)
from .serialize import LoweredModel
from .to_onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, to_onnx

__all__ = ["to_onnx", "LoweredModel", "DEFAULT_OPSET", "MIN_OPSET", "MAX_OPSET"]
