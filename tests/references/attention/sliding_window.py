"""Attention kind `sliding_window`: each query sees the keys |i - j| <= w·d, every d-th one (a
dilated window, Beltagy et al. 2020)."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


def window(options, s: int, t: int):
    i, j = relative_positions(s, t)
    d = i - j
    return (np.abs(d) <= options.window * options.dilation) & (d % options.dilation == 0)


@ATTENTION.register("sliding_window")
class SlidingWindow(MultiHead):
    def allowed(self, ref, options, s, t, site):
        return window(options, s, t)
