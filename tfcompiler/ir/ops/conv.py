"""Depth-wise 2-D convolution over tokens laid out on a grid (CPVT's position encoding generator).

grid_conv(x (B, S, D), weight (D, 1, k, k), bias (D,)) attrs grid_width, skip -> (B, S, D):
the first `skip` tokens (class tokens) give 0; the rest are read row-major as a (rows, grid_width)
grid, rows = (S - skip) / grid_width at run time, convolved per channel with zero 'same' padding.
"""
from __future__ import annotations

import numpy as np

from . import OpTypeError, register


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
