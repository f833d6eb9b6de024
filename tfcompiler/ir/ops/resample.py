"""Ops of stacks whose length changes (Funnel Transformer, Dai et al. 2020):

shorten(x (B, S, ...)) attrs stride, mode, separate_cls, truncate -> (B, S', ...): windows of
  `stride` entries along axis 1 reduced by `mode`: mean (hidden states), min (padding masks: a
  window is real only if all of it is), max (a window is real if any of it is) or first (token
  types). With separate_cls the windows run over
  [x0, x0, x1, ...], so the first entry ([CLS]) is a window of its own; truncate drops x's last entry
  from that sequence (S' = ceil(S / stride) either way without separate_cls). A last window shorter
  than `stride` reduces what it has.
upsample(x (B, S', D), like (B, S, ...)) attrs stride, separate_cls -> (B, S, D): every entry
  repeated `stride` times and cut (or zero-filled) to like's length; with separate_cls x0 stays
  one entry and the rest fill positions 1...
shift_right(x (B, S, ...)) attrs count -> (B, S, ...): `count` zeros in front, the last `count`
  entries dropped (Hourglass's causal shift: a window of the shifted sequence ends at its first token).
fold_windows(x (B, S, D)) attrs size -> (B, ceil(S/size), size, D): consecutive windows, the last
  one zero-filled.
fill_windows(x (B, S, ...)) attrs size -> (B, ceil(S/size)·size, ...): zero entries after the last,
  to a whole number of windows (lucidrains' Hourglass pads before its causal shift).
whole_windows(x (B, S, ...)) attrs size -> (B, S - S mod size, ...): the entries that fill whole windows;
  window_remainder(x) -> (B, S mod size, ...): the ones after them (the Compressive Transformer's
  evicted states still short of a window).
fold_grid(x (B, S[, D])) attrs width, size -> (B, S', size², [D]): x a raster-scan grid `width` wide
  (zero rows fill the last block of rows), cut in size×size squares, each square's entries column
  by column (Swin's patch-merging order: (0,0), (1,0), (0,1), (1,1) for size 2); S' squares in
  raster order, width/size of them per row.
unfold_windows(x (B, N, size, D), like (B, S, ...)) -> (B, S, D): the windows back in a row, cut to
  like's length.
spaced_distances(q (B, H, S, Dh), k (B, H, T, Dh)) attrs ratio, offset, unit -> int64 (R,): the
  token distances between queries spaced `ratio` keys apart and keys spaced `unit` tokens apart,
  query i at (i - offset)·ratio·unit + offset and key j at (j - offset)·unit + offset, one entry per
  n = i·ratio - j, ascending: unit·(n + offset·(1 - ratio)) for n from 1 - T to (S - 1)·ratio.
spaced_distance_index(q, k) attrs ratio -> int64 (S, T): where each pair sits in spaced_distances,
  i·ratio - j + T - 1.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import OpTypeError, register


def shortened_length(n, stride: int, separate_cls: bool, truncate: bool):
    """S' for an input of length n (an int or a symbol)."""
    extra = int(separate_cls and not truncate)  # [CLS] doubled and nothing dropped
    if isinstance(n, int):
        return -(-(n + extra) // stride)
    return f"ceil(({n}+1)/{stride})" if extra else f"ceil({_grouped(n)}/{stride})"


def _grouped(n: str) -> str:
    """A symbolic length as one term of a larger expression."""
    return n if n.isidentifier() else f"({n})"


def _windows(attrs, x):
    if attrs.get("separate_cls"):
        x = np.concatenate([x[:, :1], x[:, :-1] if attrs.get("truncate") else x], axis=1)
    stride = attrs["stride"]
    return [x[:, i:i + stride] for i in range(0, x.shape[1], stride)]


def _shorten(attrs, x):
    reduce = {"mean": lambda w: w.mean(axis=1), "min": lambda w: w.min(axis=1), "max": lambda w: w.max(axis=1),
              "first": lambda w: w[:, 0]}
    out = [reduce[attrs["mode"]](w) for w in _windows(attrs, x)]
    return [np.stack(out, axis=1).astype(x.dtype)]


def _shorten_infer(attrs, types):
    (x,) = types
    if x.rank < 2 or attrs["mode"] not in ("mean", "min", "max", "first"):
        raise OpTypeError(f"shorten takes (B, S, ...) and mode mean|min|max|first, got {x} and {attrs['mode']}")
    if attrs["mode"] == "mean" and not x.dtype.startswith("float"):
        raise OpTypeError(f"shorten by mean needs floats, got {x.dtype}")
    length = shortened_length(x.shape[1], attrs["stride"], attrs.get("separate_cls", False),
                              attrs.get("truncate", False))
    return [x.with_shape((x.shape[0], length) + x.shape[2:])]


def _zero_filled(x, count: int):
    """x with `count` zero entries appended along axis 1."""
    return np.concatenate([x, np.zeros((x.shape[0], count) + x.shape[2:], x.dtype)], axis=1)


def _upsample(attrs, x, like):
    first, rest = (x[:, :1], x[:, 1:]) if attrs.get("separate_cls") else (x[:, :0], x)
    repeated = np.repeat(rest, attrs["stride"], axis=1)
    wanted = like.shape[1] - first.shape[1]
    filled = _zero_filled(repeated, max(0, wanted - repeated.shape[1]))
    return [np.concatenate([first, filled[:, :wanted]], axis=1)]


def _shift_right(attrs, x):
    count = min(attrs["count"], x.shape[1])
    return [np.concatenate([np.zeros_like(x[:, :count]), x[:, :x.shape[1] - count]], axis=1)]


def _fold_windows(attrs, x):
    size = attrs["size"]
    padded = _zero_filled(x, -x.shape[1] % size)
    return [padded.reshape(x.shape[0], -1, size, x.shape[2])]


def _fold_infer(attrs, types):
    (x,) = types
    if x.rank != 3:
        raise OpTypeError(f"fold_windows takes (B, S, D), got {x}")
    count = shortened_length(x.shape[1], attrs["size"], False, False)
    return [x.with_shape((x.shape[0], count, attrs["size"], x.shape[2]))]


def _filled(n, size: int):
    return -(-n // size) * size if isinstance(n, int) else f"ceil({_grouped(n)}/{size})*{size}"


def _remainder(n, size: int):
    return n % size if isinstance(n, int) else f"{_grouped(n)}%{size}"


def _whole(n, size: int):
    return n - n % size if isinstance(n, int) else f"{_grouped(n)}-{_remainder(n, size)}"


def grid_length(n, width: int, size: int):
    rows = width * size
    return -(-n // rows) * (width // size) if isinstance(n, int) else f"ceil({n}/{rows})*{width // size}"


def _fold_grid(attrs, x):
    width, size = attrs["width"], attrs["size"]
    block = width * size
    padded = _zero_filled(x, -x.shape[1] % block)
    tail = padded.shape[2:]
    grid = padded.reshape((x.shape[0], -1, size, width // size, size) + tail)  # (B, R', row, C', column, ...)
    order = (0, 1, 3, 4, 2) + tuple(range(5, grid.ndim))
    return [grid.transpose(order).reshape((x.shape[0], -1, size * size) + tail)]


def _fold_grid_infer(attrs, types):
    (x,) = types
    if x.rank not in (2, 3) or attrs["width"] % attrs["size"]:
        raise OpTypeError(f"fold_grid takes (B, S[, D]) and a width divisible by the size, got {x}, {attrs}")
    length = grid_length(x.shape[1], attrs["width"], attrs["size"])
    return [x.with_shape((x.shape[0], length, attrs["size"] ** 2) + x.shape[2:])]


def _distances(attrs, q, k):
    s, t, ratio = q.shape[2], k.shape[2], attrs["ratio"]
    n = np.arange(1 - t, (s - 1) * ratio + 1)
    return [(attrs["unit"] * (n + attrs["offset"] * (1 - ratio))).astype(np.int64)]


def _distances_infer(attrs, types):
    s, t = types[0].shape[2], types[1].shape[2]
    ratio = attrs["ratio"]
    count = (s - 1) * ratio + t if isinstance(s, int) and isinstance(t, int) else f"({s}-1)*{ratio}+{t}"
    return [TensorType("int64", (count,))]


register("shorten", (1, 1), _shorten_infer, _shorten)
register("upsample", (2, 2), lambda attrs, t: [t[0].with_shape(t[1].shape[:2] + t[0].shape[2:])], _upsample)
register("shift_right", (1, 1), lambda attrs, t: [t[0]], _shift_right)
register("fold_windows", (1, 1), _fold_infer, _fold_windows)
register("fill_windows", (1, 1), lambda attrs, t: [t[0].with_shape(
    (t[0].shape[0], _filled(t[0].shape[1], attrs["size"])) + t[0].shape[2:])],
         lambda attrs, x: [_zero_filled(x, -x.shape[1] % attrs["size"])])
register("whole_windows", (1, 1), lambda attrs, t: [t[0].with_shape(
    (t[0].shape[0], _whole(t[0].shape[1], attrs["size"])) + t[0].shape[2:])],
         lambda attrs, x: [x[:, :_whole(x.shape[1], attrs["size"])]])
register("window_remainder", (1, 1), lambda attrs, t: [t[0].with_shape(
    (t[0].shape[0], _remainder(t[0].shape[1], attrs["size"])) + t[0].shape[2:])],
         lambda attrs, x: [x[:, _whole(x.shape[1], attrs["size"]):]])
register("fold_grid", (1, 1), _fold_grid_infer, _fold_grid)
register("unfold_windows", (2, 2), lambda attrs, t: [t[0].with_shape(t[1].shape[:2] + t[0].shape[3:])],
         lambda attrs, x, like: [x.reshape(x.shape[0], -1, x.shape[3])[:, :like.shape[1]]])
register("spaced_distances", (2, 2), _distances_infer, _distances)
register("spaced_distance_index", (2, 2),
         lambda attrs, t: [TensorType("int64", (t[0].shape[2], t[1].shape[2]))],
         lambda attrs, q, k: [(np.arange(q.shape[2])[:, None] * attrs["ratio"] - np.arange(k.shape[2])[None, :]
                               + k.shape[2] - 1).astype(np.int64)])
