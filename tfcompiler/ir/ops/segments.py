"""Ops of the low-rank attention kinds (Linformer, Nyströmformer).

segment_means(x (B,H,S,D), keep (B,1,S,1)) attrs segments m, front, over -> (B,H,m,D): the sequence cut
  into m segments of ceil(S/m) positions, the last ones short or empty (or, with front, as if padded at
  the front to m·ceil(S/m): the first ones short or empty), each the mean of its kept positions (0 where
  none is kept), or with over: all, its kept positions' sum over ceil(S/m): Nyströmformer's landmarks
  for any length.
sequence_conv(x (B,H,S,D), weight (H,1,k,1)) -> (B,H,S,D): per-head convolution along the sequence,
  zero padded, 'same' length (Nyströmformer's depth-wise residual on the values).
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def segment_means(x, keep, segments: int, front: bool = False, over: str = "kept"):
    b, h, s, d = x.shape
    length = -(-s // segments)
    pad = (0, 0), (0, 0), ((segments * length - s, 0) if front else (0, segments * length - s)), (0, 0)
    x = np.pad(x.astype(np.float64) * keep, pad).reshape(b, h, segments, length, d)
    if over == "all":
        return x.sum(axis=3) / length
    counts = np.pad(np.broadcast_to(keep, (b, 1, s, 1)).astype(np.float64), pad)
    counts = counts.reshape(b, 1, segments, length, 1).sum(axis=3)
    return x.sum(axis=3) / np.maximum(counts, 1.0)


def _means_infer(attrs, types):
    x, keep = types
    if x.rank != 4 or keep.rank != 4:
        raise OpTypeError(f"segment_means takes x (B,H,S,D) and keep (B,1,S,1): {x}, {keep}")
    return [x.with_shape(x.shape[:2] + (attrs["segments"],) + x.shape[3:])]


def sequence_conv(x, weight):
    k = weight.shape[2]
    s = x.shape[2]
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (k // 2, k // 2), (0, 0)))
    out = sum(padded[:, :, o:o + s] * weight[None, :, 0, o, 0, None, None] for o in range(k))
    return out.astype(x.dtype)


def _conv_infer(attrs, types):
    x, weight = types
    if x.rank != 4 or weight.rank != 4 or weight.shape[0] != x.shape[1] or weight.shape[2] % 2 == 0:
        raise OpTypeError(f"sequence_conv takes x (B,H,S,D) and an odd per-head kernel (H,1,k,1): {x}, {weight}")
    return [x]


register("segment_means", (2, 2), _means_infer,
         lambda attrs, x, keep: [segment_means(x, keep, attrs["segments"], attrs.get("front", False),
                                               attrs.get("over", "kept")).astype(x.dtype)])
register("sequence_conv", (2, 2), _conv_infer, lambda attrs, x, w: [sequence_conv(x, w)])
