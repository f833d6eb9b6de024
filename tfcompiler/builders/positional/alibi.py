"""Positional scheme `alibi`: attention with linear biases (Press et al. 2022). No positional signal
on the embeddings; each self-attention head h adds -m_h · distance to its scores.

Slopes: for H a power of two, m_h = 2^(-8h/H), h = 1..H; otherwise the slopes of the closest
smaller power of two, then every other slope of twice that power (the paper's reference code).
Built from the IR's relative_distance n = j - i (queries aligned to the end of the keys), so it holds
for any length and when the keys include a cache: bias = m·n (causal; the mask hides n > 0) or
-m·|n| (symmetric). Lowered to standard ops (Range/Sub/Abs/Mul): no contrib op needed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class AlibiOptions(PositionalKind):
    """Linear distance penalties on attention scores, one slope per head."""

    PAPER = "Press et al. 2022"
    COMPUTES = "−m_h·distance bias, any head count, causal or symmetric"
    LOWERING = "Range/Sub/Abs/Mul"

    form: str = option("causal", doc="causal: -m·(i-j), for decoders; symmetric: -m·|i-j|, for "
                       "bidirectional encoders.", choices=("causal", "symmetric"))

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def alibi_slopes(heads: int) -> list[float]:
    def power_of_two(n):
        return [2 ** (-8 * h / n) for h in range(1, n + 1)]

    if heads & (heads - 1) == 0:
        return power_of_two(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_two(closest) + alibi_slopes(2 * closest)[0::2][: heads - closest]


def bias(ctx, options: AlibiOptions, spec, parts, site):
    with ctx.at("alibi"):
        distance = ctx.op("cast", ctx.op("relative_distance", parts.query, parts.key), dtype="float32")
        slopes = np.asarray(alibi_slopes(spec.model.heads), np.float32)[None, :, None, None]  # (1,H,1,1)
        if options.form == "symmetric":
            distance, slopes = ctx.op("abs", distance), -slopes
        return parts.add_bias(ctx.op("mul", ctx.constant(slopes), distance, label="ALiBi"))


POSITIONS.register("alibi", AlibiOptions, PositionalScheme(attend=bias), examples={
    "alibi_causal_decoder": """
topology: decoder
model: {kv_heads: 2}
positional: {kind: alibi}
decoder: {layers: 2}
head: {kind: lm}
""",
    "alibi_symmetric_six_heads": """
topology: encoder
model: {heads: 6, head_width: 8}
positional: {kind: alibi, form: symmetric}
encoder: {layers: 2}
""",
})
