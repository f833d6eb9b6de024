"""Positional scheme `alibi` (Press et al. 2022): head h adds -m_h·(i - j) to its scores (|i - j|
when symmetric); the slopes are the geometric sequence starting at 2^(-8/n) with that ratio, for n a
power of two, else the closest smaller power's slopes followed by every other slope of twice it."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


def alibi_slopes(n: int) -> np.ndarray:
    if math.log2(n).is_integer():
        start = 2 ** (-8 / n)
        return start ** np.arange(1, n + 1)
    k = 2 ** int(math.log2(n))
    return np.concatenate([alibi_slopes(k), alibi_slopes(2 * k)[::2][: n - k]])


def alibi_bias(heads: int, s: int, t: int, symmetric: bool) -> np.ndarray:
    """(H, S, T) penalties, queries at the end of the keys."""
    i, j = relative_positions(s, t)
    distance = np.abs(i - j) if symmetric else i - j
    return -alibi_slopes(heads)[:, None, None] * distance


@POSITIONS.register("alibi")
class Alibi(Scheme):
    def attend(self, ref, options, logits, site):
        s, t = logits.q.shape[2], logits.k.shape[2]
        logits.bias = logits.bias + alibi_bias(ref.spec.model.heads, s, t, options.form == "symmetric")
