"""Ops of continuous series (Informer, Zhou et al. 2021; Hugging Face's time-series models):

circular_conv(x (B, S, C), weight (O, C, k), bias? (O,)) -> (B, S, O): a Conv1d of odd kernel k over the
  steps, padded circularly by k // 2 on each side (the last steps before the first, the first after the
  last: torch's padding_mode="circular"), as Informer's token embedding and distilling convolution read
  the series; k // 2 must not exceed S.
max_pool(x (B, S, D)) attrs kernel, stride, pad -> (B, ⌊(S + 2·pad - kernel) / stride⌋ + 1, D): the
  maximum over each window of `kernel` steps, `stride` apart, the series padded with -inf (torch's
  MaxPool1d; Informer's distilling pools kernel 3, stride 2, pad 1: ⌈S/2⌉ steps).
slice(x) attrs axis, start, end (None: to the end), step -> x[start:end:step] along axis, Python's
  semantics (negative bounds count from the end).
spread_steps(x (B, K), like (B, S, ...)) -> (B, S, K): x repeated over like's steps (static features
  joined to every step).
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def pooled_length(n, kernel: int, stride: int, pad: int):
    """The steps a (kernel, stride, pad) window leaves of n (an int or a symbol); a 'same' window
    (2·pad = kernel - 1) leaves ⌈n/stride⌉, written as a strided slice's is, so the pooled states and
    their pooled mask share one symbol."""
    if isinstance(n, int):
        return (n + 2 * pad - kernel) // stride + 1
    if 2 * pad == kernel - 1:
        return sliced_length(n, 0, None, stride)
    return f"floor(({n}+{2 * pad - kernel})/{stride})+1"


def sliced_length(n, start: int, end, step: int):
    """len(range(n)[start:end:step]) for an int n; a symbol otherwise."""
    if isinstance(n, int):
        return len(range(n)[start:end:step])
    core = n if n.isidentifier() else f"({n})"
    known, plus, rest = n.strip("()").partition("+")
    if plus and known.isdigit() and step == 1 and 0 <= start and end is not None and end < 0 \
            and int(known) - start + end == 0:  # (k + S)[k - m : -m]: S entries (a lag of a joined series)
        return rest
    if start < 0 and end is None and step == 1:
        return f"min({core},{-start})"
    if (start, end) == (0, None):
        return core if step == 1 else f"ceil({core}/{step})"
    return f"slice({core},{start},{end},{step})"


def _conv_infer(attrs, types):
    x, weight = types[:2]
    if x.rank != 3 or weight.rank != 3 or weight.shape[1] != x.shape[2] or weight.shape[2] % 2 == 0 \
            or len(types) == 3 and types[2].shape != (weight.shape[0],):
        raise OpTypeError(f"circular_conv needs x (B,S,C), an odd kernel (O,C,k) and a bias (O,): "
                          f"{', '.join(map(str, types))}")
    return [x.with_shape(x.shape[:2] + (weight.shape[0],))]


def circular_conv(x, weight, bias=None) -> np.ndarray:
    k = weight.shape[2]
    pad = k // 2
    padded = np.concatenate([x[:, x.shape[1] - pad:], x, x[:, :pad]], axis=1).astype(np.float64)
    out = sum(padded[:, i:i + x.shape[1]] @ weight[:, :, i].T.astype(np.float64) for i in range(k))
    return (out + (0.0 if bias is None else bias)).astype(x.dtype)


def _pool_infer(attrs, types):
    (x,) = types
    if x.rank != 3:
        raise OpTypeError(f"max_pool takes (B, S, D), got {x}")
    return [x.with_shape((x.shape[0], pooled_length(x.shape[1], attrs["kernel"], attrs["stride"], attrs["pad"]),
                          x.shape[2]))]


def max_pool(x, kernel: int, stride: int, pad: int) -> np.ndarray:
    fill = np.full((x.shape[0], pad, x.shape[2]), -np.inf, x.dtype)
    padded = np.concatenate([fill, x, fill], axis=1)
    steps = (x.shape[1] + 2 * pad - kernel) // stride + 1
    return np.stack([padded[:, i * stride:i * stride + kernel].max(1) for i in range(steps)], axis=1)


def _slice_infer(attrs, types):
    (x,) = types
    axis = attrs["axis"] % x.rank
    length = sliced_length(x.shape[axis], attrs["start"], attrs.get("end"), attrs.get("step", 1))
    return [x.with_shape(x.shape[:axis] + (length,) + x.shape[axis + 1:])]


def _slice(attrs, x):
    index = [slice(None)] * x.ndim
    index[attrs["axis"]] = slice(attrs["start"], attrs.get("end"), attrs.get("step", 1))
    return [x[tuple(index)]]


def _spread_infer(attrs, types):
    x, like = types
    if x.rank != 2 or like.rank < 2:
        raise OpTypeError(f"spread_steps takes x (B, K) and like (B, S, ...), got {x} and {like}")
    return [x.with_shape((x.shape[0], like.shape[1], x.shape[1]))]


register("circular_conv", (2, 3), _conv_infer, lambda attrs, x, w, b=None: [circular_conv(x, w, b)])
register("max_pool", (1, 1), _pool_infer, lambda attrs, x: [max_pool(x, attrs["kernel"], attrs["stride"],
                                                                      attrs["pad"])])
register("slice", (1, 1), _slice_infer, _slice)
register("spread_steps", (2, 2), _spread_infer,
         lambda attrs, x, like: [np.repeat(x[:, None], like.shape[1], axis=1)])
