"""Relative-position ops: the distance between every query and key, and the gather that turns
per-distance scores into per-key scores (Transformer-XL's relative shift, Music Transformer's skew).

relative_distance(q, k) -> int64 (S, T), n[i, j] = j - (i + T - S): key position minus query
  position, with the queries at the end of the keys (offset T - S), so every relative scheme stays
  right when the keys include a cache or memory. Only the lengths of q and k (axis 2) are read.
distance_range(q, k) -> int64 (S + T - 1,): every query-minus-key distance d = i' - j that occurs,
  ascending from 1 - S to T - 1 (for tables computed per distance, Transformer-XL's R).
distance_index(q, k) -> int64 (S, T): where each pair's distance sits in distance_range,
  i' - j - (1 - S) = i - j + T - 1.
take_relative(x (..., S, R), index (S, T)) -> (..., S, T), out[..., i, j] = x[..., i, index[i, j]]:
  scores computed once per distance bucket, read out per key. Memory O(S·T), never O(S·T·Dh).
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import OpTypeError, register


def relative_distance(s: int, t: int) -> np.ndarray:
    return np.arange(t)[None, :] - (np.arange(s)[:, None] + (t - s))


def _distance_infer(attrs, types):
    q, k = types
    if q.rank != 4 or k.rank != 4:
        raise OpTypeError("relative_distance takes 4-D q and k")
    return [TensorType("int64", (q.shape[2], k.shape[2]))]


def _take_infer(attrs, types):
    x, index = types
    if index.rank != 2 or index.dtype != "int64":
        raise OpTypeError(f"take_relative's index must be int64 (S, T), got {index}")
    if x.shape[-2] != index.shape[0]:
        raise OpTypeError(f"take_relative rows differ: {x} and {index}")
    return [x.with_shape(x.shape[:-1] + index.shape[1:])]


def _take(attrs, x, index):
    index = np.broadcast_to(index, x.shape[:-2] + index.shape)
    return [np.take_along_axis(x, index, axis=-1)]


def _range_infer(attrs, types):
    q, k = types
    s, t = q.shape[2], k.shape[2]
    length = s + t - 1 if isinstance(s, int) and isinstance(t, int) else f"{s}+{t}-1"
    return [TensorType("int64", (length,))]


register("distance_range", (2, 2), _range_infer,
         lambda attrs, q, k: [np.arange(1 - q.shape[2], k.shape[2], dtype=np.int64)])
register("distance_index", (2, 2), _distance_infer,
         lambda attrs, q, k: [(q.shape[2] - 1 - relative_distance(q.shape[2], k.shape[2])).astype(np.int64)])
register("relative_distance", (2, 2), _distance_infer,
         lambda attrs, q, k: [relative_distance(q.shape[2], k.shape[2]).astype(np.int64)])
register("take_relative", (2, 2), _take_infer, _take)
