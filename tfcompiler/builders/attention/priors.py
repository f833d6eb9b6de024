"""Distance priors on attention scores, as additive biases of the relative distance n = j - i
(queries aligned to the end of the keys, so they hold with a cache or memory):

- restricted spans: head h sees only |n| <= w_h (Multi-Scale Transformer, Guo et al. 2020: one span
  per head, and per layer through block overrides);
- adaptive span (Sukhbaatar et al. 2019): the soft mask m(x) = clamp((R + z_h - x) / R, 0, 1) on
  x = |n|, z_h = max_span · clamp(p_h, 0, 1) learned. a_ij = m·e^s / Σ m·e^s is exactly softmax of
  s + log m, so the mask is the bias log m (masked where m = 0; m(0) = 1 keeps every row alive);
- Gaussian prior (Guo, Zhang & Liu 2019): -w_h · n² with w_h = |ω_h| learned (the paper's per-head
  offset b_h shifts a whole row and cancels in the softmax, so it is not a parameter).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...language.schema import option
from ...language.shrink_rules import cap


@dataclass(frozen=True, kw_only=True)
class AdaptiveSpan:
    """A learned soft span per head (Sukhbaatar et al. 2019)."""

    max_span: int = option(doc="Largest span S; the learned z_h = S · clamp(p_h, 0, 1).", minimum=1, shrink=cap(8))
    ramp: int = option(32, doc="Width R of the soft ramp from 1 to 0.", minimum=1, shrink=cap(4))


def _distance(ctx, parts):
    """|n| as float32 (S, T)."""
    return ctx.op("abs", ctx.op("cast", ctx.op("relative_distance", parts.query, parts.key), dtype="float32"))


def _per_head(values) -> np.ndarray:
    return np.asarray(values, np.float32)[None, :, None, None]  # (1, H, 1, 1)


def window_bias(ctx, parts, windows: list[int], heads: int):
    """0 where |n| <= w_h, masked elsewhere; ``windows`` holds one span for all heads or one per head."""
    spans = windows * heads if len(windows) == 1 else windows
    with ctx.at("span"):
        outside = ctx.op("less", ctx.constant(_per_head(spans)), _distance(ctx, parts))
        return ctx.op("where", outside, ctx.op("mask_value"), ctx.constant(0.0), label="RestrictedSpan")


def adaptive_span_bias(ctx, parts, span: AdaptiveSpan, heads: int):
    with ctx.at("adaptive_span"):
        fraction = ctx.param("fraction", (1, heads, 1, 1), "zeros")
        z = ctx.op("mul", ctx.op("clip", fraction, low=0.0, high=1.0), ctx.constant(float(span.max_span)))
        ramp = ctx.constant(float(span.ramp))
        soft = ctx.op("div", ctx.op("sub", ctx.op("add", z, ramp), _distance(ctx, parts)), ramp)
        soft = ctx.op("clip", soft, low=0.0, high=1.0, label="SoftMask")
        return ctx.op("where", ctx.op("less", ctx.constant(0.0), soft), ctx.op("log", soft),
                      ctx.op("mask_value"), label="AdaptiveSpan")


def gaussian_bias(ctx, parts, heads: int):
    with ctx.at("gaussian_prior"):
        width = ctx.op("abs", ctx.param("weight", (1, heads, 1, 1), "fill=0.1"))
        distance = _distance(ctx, parts)
        return ctx.op("neg", ctx.op("mul", width, ctx.op("mul", distance, distance)), label="GaussianPrior")
