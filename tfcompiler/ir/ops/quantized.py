"""Quantized linear maps (`tfc compile --quantize int8 | int4`):

quantized_matmul(x (..., K) float32, w (K, N) int8, scale (N,) float32) -> (..., N) float32:
  x is quantized per tensor at run time as ONNX's DynamicQuantizeLinear does (uint8, the range
  [min(x, 0), max(x, 0)] in 255 steps, zero point round(-min / step), rounding half to even), the
  product taken in integers, and the result scaled back: (xq - zx) @ w · step · scale. The weight
  was quantized per output column when the model was compiled, w = round(W / scale).
int4_matmul (below): weight-only 4-bit blocks in onnxruntime's MatMulNBits layout.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import OpTypeError, register


def quantize_activation(x: np.ndarray) -> tuple[np.ndarray, np.float32, np.uint8]:
    low, high = min(float(x.min(initial=0.0)), 0.0), max(float(x.max(initial=0.0)), 0.0)
    step = np.float32((high - low) / 255.0)
    if step == 0:
        return np.zeros(x.shape, np.uint8), step, np.uint8(0)
    zero = np.uint8(np.clip(np.rint(-low / step), 0, 255))
    quantized = np.clip(np.rint(x / step) + zero, 0, 255).astype(np.uint8)
    return quantized, step, zero


def _evaluate(attrs, x, w, scale):
    quantized, step, zero = quantize_activation(x)
    product = (quantized.astype(np.int32) - np.int32(zero)) @ w.astype(np.int32)
    return [(product.astype(np.float32) * (step * scale)).astype(np.float32)]


def _infer(attrs, types):
    x, w, scale = types
    if x.dtype != "float32" or w.dtype != "int8" or scale.dtype != "float32" or w.rank != 2:
        raise OpTypeError(f"quantized_matmul takes float32 x, int8 (K, N) w and float32 scales, got {x}, {w}, {scale}")
    if x.shape[-1] != w.shape[0] or scale.shape != (w.shape[1],):
        raise OpTypeError(f"quantized_matmul shapes do not fit: {x}, {w}, {scale}")
    return [TensorType("float32", x.shape[:-1] + (w.shape[1],))]


register("quantized_matmul", (3, 3), _infer, _evaluate)


def unpack_int4(packed: np.ndarray, scales: np.ndarray, k: int, layout: str = "nbits", block: int = 32) -> np.ndarray:
    """4-bit codes back to a (K, N) float32 weight, two a byte (low nibble first), zero point 8:
    "nbits" (MatMulNBits), packed (N, ⌈K/block⌉, block/2) and scales (N, ⌈K/block⌉); "rows", the
    (K, N) codes packed flat and scales (⌈K/block⌉, N)."""
    codes = np.stack([packed & 0x0F, packed >> 4], axis=-1).astype(np.float32) - 8
    if layout == "rows":
        n = scales.shape[1]
        return codes.reshape(-1)[:k * n].reshape(k, n) * np.repeat(scales, block, axis=0)[:k]
    values = codes.reshape(packed.shape[0], packed.shape[1], -1) * scales[..., None]
    return values.reshape(packed.shape[0], -1)[:, :k].T


def _weight_only(attrs, x, packed, scales):
    weight = unpack_int4(packed, scales, attrs["k"], attrs.get("layout", "nbits"), attrs["block"])
    return [(x @ weight).astype(np.float32)]


def _weight_only_infer(attrs, types):
    x, packed, scales = types
    rows = attrs.get("layout") == "rows"
    if packed.dtype != "uint8" or packed.rank != (1 if rows else 3) or scales.rank != 2 or x.shape[-1] != attrs["k"]:
        raise OpTypeError(f"int4_matmul takes x (..., K), packed uint8 codes (flat, or (N, K/block, block/2)) and "
                          f"scales: {x}, {packed}, {scales}")
    return [TensorType("float32", x.shape[:-1] + (scales.shape[1] if rows else packed.shape[0],))]


# int4_matmul(x (..., K), packed uint8, scales) attrs k, n, block, layout (nbits | rows, see unpack_int4):
# x @ W with W's 4-bit codes per block of `block` rows of a column, zero point 8 (weight-only: x stays fp32)
register("int4_matmul", (3, 3), _weight_only_infer, _weight_only)
