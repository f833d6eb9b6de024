"""A 1-D convolution along the sequence across all channels, the length kept: the text-to-speech pre-nets' and
post-net's Conv1d (Li et al. 2019; Tacotron 2), BatchNorm folded into its weight and bias.

frame_conv(x (B, S, Cin), weight (Cout, Cin, k), bias (Cout,)) -> (B, S, Cout): torch's Conv1d over x
transposed to (B, Cin, S), odd k, zero padding (k - 1) / 2 at each end ('same' length), transposed back.
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def frame_conv(x, weight, bias) -> np.ndarray:
    k, s = weight.shape[2], x.shape[1]
    padded = np.pad(x.astype(np.float64), ((0, 0), (k // 2, k // 2), (0, 0)))
    # out[b, t, o] = bias[o] + Σ_{tap, i} padded[b, t + tap, i] · weight[o, i, tap]
    out = sum(padded[:, tap:tap + s] @ weight[:, :, tap].T.astype(np.float64) for tap in range(k))
    return (out + bias).astype(x.dtype)


def _infer(attrs, types):
    x, weight, bias = types
    if x.rank != 3 or weight.rank != 3 or weight.shape[1] != x.shape[2] or weight.shape[2] % 2 == 0 \
            or bias.shape != weight.shape[:1]:
        raise OpTypeError(f"frame_conv needs x (B,S,Cin), an odd kernel (Cout,Cin,k) and a bias (Cout,): "
                          f"{x}, {weight}, {bias}")
    return [x.with_shape(x.shape[:2] + weight.shape[:1])]


register("frame_conv", (3, 3), _infer, lambda attrs, x, w, b: [frame_conv(x, w, b)])
