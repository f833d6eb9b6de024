"""Attention kind `sliding_window`: each query sees the keys |i - j| <= w·d, every d-th one (a
dilated window, Beltagy et al. 2020); with `query_rotation: window_ahead` a bidirectional stack's rotary
positions rotate query i at position i + w·d (lucidrains' local-attention)."""
from __future__ import annotations

import dataclasses

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

    def attend(self, ref, q, k, v, site):
        options = site.options
        if options.query_rotation == "window_ahead" and not site.causal:
            s, t = q.shape[2], k.shape[2]
            site = dataclasses.replace(site, positions=np.arange(t - s, t) + options.window * options.dilation)
        return super().attend(ref, q, k, v, site)
