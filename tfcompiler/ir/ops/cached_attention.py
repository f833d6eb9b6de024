"""One cached decoder self-attention as a single op (made by passes/fuse_cached_attention.py):

cached_attention(q (B, S, H·Dh), k (B, S, Hkv·Dh), v (B, S, Hkv·Dh), past_key (B, Hkv, P, Dh),
past_value (B, Hkv, P, Dh), bias (B, 1, 1, P+S)[, positions (B, S)]) attrs heads, kv_heads, scale,
rope (None, or the rope op's attributes as sorted pairs)
  -> context (B, S, H·Dh), present_key (B, Hkv, P+S, Dh), present_value (B, Hkv, P+S, Dh)

It is the chain it replaces, with the same numbers: the heads split out, the queries and new keys
rotated (rope), the new keys and values appended to the past ones, causal attention (bottom-right
aligned) under the key padding bias, the heads merged back. Its one-kernel form is onnxruntime's
GroupQueryAttention, which can also append in place into a preallocated cache.
"""
from __future__ import annotations

import numpy as np

from .nn import attention_reference
from .registry import OpTypeError, infer_types, op_def, register
from ..types import TensorType


def heads_of(x: np.ndarray, count: int) -> np.ndarray:
    """(B, S, count·Dh) -> (B, count, S, Dh)."""
    return x.reshape(x.shape[0], x.shape[1], count, -1).transpose(0, 2, 1, 3)


def _infer(attrs, types):
    q, k, v, past_key, past_value, bias, *positions = types
    heads, kv_heads = attrs["heads"], attrs["kv_heads"]
    width = past_key.shape[3]
    if q.rank != 3 or k.rank != 3 or v.rank != 3 or past_key.rank != 4 or past_key != past_value:
        raise OpTypeError(f"cached_attention takes 3-D q, k, v and equal 4-D pasts, got {q}, {k}, {v}, {past_key}")
    if (q.shape[2], k.shape[2], v.shape[2]) != (heads * width, kv_heads * width, kv_heads * width):
        raise OpTypeError(f"cached_attention widths do not fit {heads} and {kv_heads} heads of {width}: {q}, {k}, {v}")
    if bool(positions) != (attrs["rope"] is not None):
        raise OpTypeError("cached_attention takes positions exactly when it rotates")
    new = TensorType(q.dtype, (q.shape[0], kv_heads, q.shape[1], width))
    (present,) = infer_types("concat", {"axis": 2}, [past_key, new])
    return [q, present, present]


def _evaluate(attrs, q, k, v, past_key, past_value, bias, positions=None):
    q, k, v = heads_of(q, attrs["heads"]), heads_of(k, attrs["kv_heads"]), heads_of(v, attrs["kv_heads"])
    if attrs["rope"] is not None:
        rope = op_def("rope").evaluate
        q, k = (rope(dict(attrs["rope"]), x, positions)[0] for x in (q, k))
    keys, values = np.concatenate([past_key, k], axis=2), np.concatenate([past_value, v], axis=2)
    context = attention_reference(q, keys, values, bias, attrs["scale"], causal=True)
    return [context.transpose(0, 2, 1, 3).reshape(q.shape[0], q.shape[2], -1), keys, values]


register("cached_attention", (6, 7), _infer, _evaluate)
