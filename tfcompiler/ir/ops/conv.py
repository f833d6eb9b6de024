"""Convolutions over tokens: a depth-wise 2-D convolution over tokens laid out on a grid (CPVT's
position encoding generator), and a strided 1-D convolution that compresses the sequence
(memory-compressed attention).

grid_conv(x (B, S, D), weight (D, 1, k, k), bias (D,)) attrs grid_width, skip -> (B, S, D):
the first `skip` tokens (class tokens) give 0; the rest are read row-major as a (rows, grid_width)
grid, rows = (S - skip) / grid_width at run time, convolved per channel with zero 'same' padding.
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def _infer(attrs, types):
    x, weight, bias = types
    if x.rank != 3 or weight.shape != (x.shape[2], 1, weight.shape[2], weight.shape[2]) or weight.shape[2] % 2 == 0:
        raise OpTypeError(f"grid_conv needs x (B,S,D) and an odd square depth-wise kernel (D,1,k,k): {x}, {weight}")
    return [x]


def grid_conv(x, weight, bias, grid_width: int, skip: int) -> np.ndarray:
    b, s, d = x.shape
    k = weight.shape[-1]
    grid = x[:, skip:].astype(np.float64).reshape(b, -1, grid_width, d)
    rows = grid.shape[1]
    padded = np.pad(grid, ((0, 0), (k // 2, k // 2), (k // 2, k // 2), (0, 0)))
    out = np.broadcast_to(bias.astype(np.float64), grid.shape).copy()
    for di in range(k):
        for dj in range(k):
            out += padded[:, di:di + rows, dj:dj + grid_width] * weight[:, 0, di, dj]
    return np.concatenate([np.zeros((b, skip, d)), out.reshape(b, -1, d)], axis=1).astype(x.dtype)


register("grid_conv", (3, 3), _infer,
         lambda attrs, x, w, b: [grid_conv(x, w, b, attrs["grid_width"], attrs.get("skip", 0))])


def _compress_infer(attrs, types):
    x, weight, bias = types
    stride = attrs["stride"]
    if x.rank != 3 or weight.shape[0] != x.shape[2] or weight.shape[2] != stride or bias.shape != (x.shape[2],):
        raise OpTypeError(f"compress needs x (B,T,C), weight (C, C/groups, stride), bias (C,): {x}, {weight}, {bias}")
    length = x.shape[1]
    rows = -(-length // stride) if isinstance(length, int) else f"ceil({length}/{stride})"
    return [x.with_shape((x.shape[0], rows, x.shape[2]))]


def compress(x, weight, bias, stride: int, groups: int, front: bool = False) -> np.ndarray:
    """Conv1d with kernel = stride over the sequence, the tail (the front with ``front``: lucidrains'
    memory-compressed-attention) zero-padded to a whole stride."""
    b, t, c = x.shape
    rows = -(-t // stride)
    pad = (rows * stride - t, 0) if front else (0, rows * stride - t)
    padded = np.pad(x.astype(np.float64), ((0, 0), pad, (0, 0))).reshape(b, rows, stride, c)
    per_group = c // groups
    out = np.empty((b, rows, c))
    for g in range(groups):
        channels = slice(g * per_group, (g + 1) * per_group)
        # out[b, r, o] = Σ_{i, s} padded[b, r, s, i] · weight[o, i, s]
        out[:, :, channels] = np.einsum("brsi,ois->bro", padded[:, :, :, channels], weight[channels])
    return (out + bias).astype(x.dtype)


# compress(x, weight, bias) attrs stride, groups, front (optional, False: pad the tail): memory-compressed
# attention's strided convolution
register("compress", (3, 3), _compress_infer,
         lambda attrs, x, w, b: [compress(x, w, b, attrs["stride"], attrs["groups"], attrs.get("front", False))])
