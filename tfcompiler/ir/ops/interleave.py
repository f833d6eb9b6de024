"""Ops that weave several sequences into one and take one of them back out (Decision Transformer's stream of
(return-to-go, state, action) tokens, Chen et al. 2021):

interleave(x_1, ..., x_k (B, S, ...)) -> (B, S·k, ...): x_1[:, 0], x_2[:, 0], ..., x_k[:, 0], x_1[:, 1], ...
  (entry i of x_j lands at i·k + j - 1).
deinterleave(x (B, S·k, ...)) attrs count, index -> (B, S, ...): the entries index, index + count, ...
  along axis 1 (one of the woven sequences back; `count` is k).
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def woven_length(n, k: int):
    """S·k for a length S (an int or a symbol)."""
    return n * k if isinstance(n, int) else f"{n if n.isidentifier() else f'({n})'}*{k}"


def strand_length(n, count: int, index: int):
    """The entries index, index + count, ... of a length n: S again when n is a woven S·count."""
    if isinstance(n, int):
        return max(0, -(-(n - index) // count))
    suffix = f"*{count}"
    if n.endswith(suffix):
        inner = n[:-len(suffix)]
        return inner[1:-1] if inner.startswith("(") and inner.endswith(")") else inner
    return f"ceil(({n}-{index})/{count})"


def _interleave_infer(attrs, types):
    first = types[0]
    if first.rank < 2:
        raise OpTypeError(f"interleave takes (B, S, ...), got {first}")
    for t in types[1:]:
        if t.dtype != first.dtype or t.shape != first.shape:
            raise OpTypeError(f"interleave inputs differ: {first} and {t}")
    return [first.with_shape(first.shape[:1] + (woven_length(first.shape[1], len(types)),) + first.shape[2:])]


def _interleave(attrs, *xs):
    woven = np.stack(xs, axis=2)  # (B, S, k, ...)
    return [woven.reshape((woven.shape[0], -1) + woven.shape[3:])]


def _deinterleave_infer(attrs, types):
    (x,) = types
    count, index = attrs["count"], attrs["index"]
    if x.rank < 2 or not 0 <= index < count:
        raise OpTypeError(f"deinterleave of {x}: index {index} of {count}")
    return [x.with_shape(x.shape[:1] + (strand_length(x.shape[1], count, index),) + x.shape[2:])]


register("interleave", (2, 16), _interleave_infer, _interleave)
register("deinterleave", (1, 1), _deinterleave_infer,
         lambda attrs, x: [x[:, attrs["index"]::attrs["count"]]])
