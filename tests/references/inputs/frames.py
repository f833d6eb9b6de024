"""Input layer `frames`: speech features (B, T, F) shortened by stride-2 convolutions. Speech-Transformer (Dong
et al. 2018, `conv2d`): the features as a one-channel image, Conv2d k×k + ReLU per kernel, each frame's (C, F')
then one linear map to d. Speech2Text (Wang et al. 2020, `conv1d_glu`): the features as channels, Conv1d + GLU
(first half of the channels times the sigmoid of the second) per kernel. Each convolution zero-pads k // 2 at both
ends (`padding: half`) or nothing; times √d or a given scale. The padding mask follows each row's length n through
n' = (n + 2·pad - k) // 2 + 1, and marks the first n' states real."""
from __future__ import annotations

import numpy as np

from ..registry import INPUTS
from .tokens import scaled


def convolved(x, weight, bias, pad: int, stride: int = 2):
    """torch's Conv1d / Conv2d over x (B, C, *L) with weight (O, C, *k): out[b, o, i] = bias[o] +
    Σ_{c, j} x_padded[b, c, i·stride + j] · weight[o, c, j], for every i whose window fits."""
    spatial = x.ndim - 2
    x = np.pad(x, [(0, 0), (0, 0)] + [(pad, pad)] * spatial)
    kernel = weight.shape[2:]
    lengths = [(n - k) // stride + 1 for n, k in zip(x.shape[2:], kernel)]
    out = np.zeros((x.shape[0], weight.shape[0], *lengths))
    for at in np.ndindex(*lengths):
        window = x[(slice(None), slice(None)) + tuple(slice(i * stride, i * stride + k) for i, k in zip(at, kernel))]
        out[(slice(None), slice(None)) + at] = np.tensordot(window, weight, axes=(list(range(1, 2 + spatial)),
                                                                                  list(range(1, 2 + spatial))))
    return out + bias.reshape((-1,) + (1,) * spatial)


def kernels(options) -> list[int]:
    return list(options.kernels) or {"conv2d": [3, 3], "conv1d_glu": [5, 5]}[options.subsampler]


def pads(options) -> list[int]:
    return [k // 2 if options.padding == "half" else 0 for k in kernels(options)]


@INPUTS.register("frames")
class Frames:
    def source(self, feeds, prefix: str):
        """The stack's input: input_features (B, T, F)."""
        return feeds["input_features"]

    def mask(self, ref, options, mask):
        """The frames' mask (B, T) -> the states' (B, T'), from each row's length."""
        if mask is None:
            return None
        lengths, width = mask.sum(axis=1), ref.feeds["input_features"].shape[1]
        for k, pad in zip(kernels(options), pads(options)):
            lengths, width = (lengths + 2 * pad - k) // 2 + 1, (width + 2 * pad - k) // 2 + 1
        return (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)

    def embed(self, ref, options, scope: str, features, token_types):
        w = ref.w
        if options.subsampler == "conv2d":
            x = features.astype("float64")[:, None]  # (B, 1, T, F)
            for i, pad in enumerate(pads(options)):
                x = np.maximum(convolved(x, w[f"{scope}.conv.{i}.weight"], w[f"{scope}.conv.{i}.bias"], pad), 0)
            b, c, t, f = x.shape
            x = x.transpose(0, 2, 1, 3).reshape(b, t, c * f) @ w[f"{scope}.frames.weight"] + w[f"{scope}.frames.bias"]
        else:
            x = features.astype("float64").transpose(0, 2, 1)  # (B, F, T)
            for i, pad in enumerate(pads(options)):
                x = convolved(x, w[f"{scope}.conv.{i}.weight"], w[f"{scope}.conv.{i}.bias"], pad)
                half = x.shape[1] // 2
                x = x[:, :half] / (1 + np.exp(-x[:, half:]))
            x = x.transpose(0, 2, 1)
        return scaled(ref.spec, x)
