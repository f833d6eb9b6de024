"""ALiBi (Press et al. 2022) as one canonical IR op: a per-head linear distance penalty added to the
attention scores.

alibi(q (B,H,S,Dh), k (B,Hkv,T,Dh)) -> float32 (1, H, S, T) with
  bias[h, i, j] = -slope_h · (i + T - S - j)      (causal form; the mask hides j > i + T - S)
  bias[h, i, j] = -slope_h · |i + T - S - j|      (symmetric form, for bidirectional encoders)
Queries sit at the end of the keys (offset T - S), so the bias stays right when keys include a cache
or memory. Only q's and k's shapes are read.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from . import OpTypeError, register


def _infer(attrs, types):
    q, k = types
    if q.rank != 4 or k.rank != 4:
        raise OpTypeError("alibi takes 4-D q and k")
    if isinstance(q.shape[1], int) and len(attrs["slopes"]) != q.shape[1]:
        raise OpTypeError(f"{len(attrs['slopes'])} slopes for {q.shape[1]} heads")
    return [TensorType("float32", (1, q.shape[1], q.shape[2], k.shape[2]))]


def _evaluate(attrs, q, k):
    s, t = q.shape[2], k.shape[2]
    distance = (np.arange(s)[:, None] + (t - s) - np.arange(t)[None, :]).astype(np.float64)
    if attrs["symmetric"]:
        distance = np.abs(distance)
    slopes = np.asarray(attrs["slopes"], np.float64)[:, None, None]
    return [(-slopes * distance)[None].astype(np.float32)]


# alibi(q, k) attrs slopes (one per query head), symmetric (bool)
register("alibi", (2, 2), _infer, _evaluate)
