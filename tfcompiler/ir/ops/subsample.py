"""Strided convolutions over speech frames and the lengths they leave (the `frames` input's subsamplers,
Speech-Transformer's Conv2d and Speech2Text's Conv1d).

conv(x (B, C, *L), weight (O, C, *k), bias (O,)) attrs strides, pads -> (B, O, *L'): ONNX Conv with one group,
each spatial axis zero-padded by pads[i] at both ends, L' = (L + 2·pad - k) // stride + 1 (a symbolic L gives
that expression as the axis' name).

subsampled_mask(mask (B, T), like (B, T', ...)) attrs layers -> int64 (B, T'): the padding mask after the
convolutions `layers` ((kernel, stride, pad) each): every row's length n = Σ mask taken through each layer as
n' = floor((n + 2·pad - kernel) / stride) + 1, then 1 at the first n' positions (Hugging Face's Speech2Text:
`_get_feat_extract_output_lengths`, then a mask from the lengths). It assumes right padding, as speech feature
extractors pad.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import OpTypeError, register


def output_length(n, kernel: int, stride: int, pad: int):
    """L' of a convolution for a length n (an int, or a symbol: the expression)."""
    if isinstance(n, int):
        return (n + 2 * pad - kernel) // stride + 1
    shift = 2 * pad - kernel
    term = n if n.isidentifier() else f"({n})"
    return f"({term}{shift:+d})//{stride}+1" if shift else f"{term}//{stride}+1"


def _conv_infer(attrs, types):
    x, weight, bias = types
    strides, pads = attrs["strides"], attrs["pads"]
    spatial = x.rank - 2
    if spatial < 1 or weight.rank != x.rank or weight.shape[1] != x.shape[1] or bias.shape != weight.shape[:1] \
            or len(strides) != spatial or len(pads) != spatial:
        raise OpTypeError(f"conv needs x (B, C, *L), weight (O, C, *k), bias (O,) and one stride and pad per "
                          f"axis: {x}, {weight}, {bias}, strides {strides}, pads {pads}")
    lengths = tuple(output_length(n, k, s, p) for n, k, s, p in zip(x.shape[2:], weight.shape[2:], strides, pads))
    return [x.with_shape(x.shape[:1] + weight.shape[:1] + lengths)]


def conv(x, weight, bias, strides, pads) -> np.ndarray:
    """out[b, o, *i] = bias[o] + Σ_{c, *j} padded[b, c, *(i·stride + j)] · weight[o, c, *j]."""
    spatial = x.ndim - 2
    padded = np.pad(x.astype(np.float64), [(0, 0), (0, 0)] + [(p, p) for p in pads])
    windows = np.lib.stride_tricks.sliding_window_view(padded, weight.shape[2:], axis=tuple(range(2, x.ndim)))
    windows = windows[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)]
    kernel, at = "ijk"[:spatial], "IJK"[:spatial]  # window offsets, output positions
    out = np.einsum(f"bc{at}{kernel},oc{kernel}->bo{at}", windows, weight.astype(np.float64))
    return (out + bias.reshape((-1,) + (1,) * spatial)).astype(x.dtype)


register("conv", (3, 3), _conv_infer,
         lambda attrs, x, w, b: [conv(x, w, b, attrs["strides"], attrs["pads"])])


def _mask_infer(attrs, types):
    mask, like = types
    if mask.rank != 2 or like.rank < 2 or mask.dtype != "int64":
        raise OpTypeError(f"subsampled_mask needs an int64 mask (B, T) and the subsampled states (B, T', ...): "
                          f"{mask}, {like}")
    return [TensorType("int64", (mask.shape[0], like.shape[1]))]


def subsampled_lengths(lengths: np.ndarray, layers) -> np.ndarray:
    """Each row's real length after the convolutions (kernel, stride, pad) in turn."""
    for kernel, stride, pad in layers:
        lengths = (lengths + 2 * pad - kernel) // stride + 1
    return lengths


def subsampled_mask(mask, like, layers) -> np.ndarray:
    lengths = subsampled_lengths(mask.sum(axis=1), layers)
    return (np.arange(like.shape[1])[None, :] < lengths[:, None]).astype(np.int64)


register("subsampled_mask", (2, 2), _mask_infer,
         lambda attrs, mask, like: [subsampled_mask(mask, like, attrs["layers"])])
