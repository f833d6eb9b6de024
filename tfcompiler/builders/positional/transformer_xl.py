"""Positional scheme `transformer_xl`: the relative attention of Transformer-XL (Dai et al. 2019).

  A_ij = (q_i + u)ᵀ k_j + (q_i + v)ᵀ W_R R_{i-j}

R is the sinusoidal embedding ([sin | cos], as XL's code) of the query-minus-key distance, W_R a
per-layer projection, u and v learned per layer and head; both terms take the usual 1/√d scale.
The position term is computed once per distance that occurs (distance_range: 1-S ... T-1, so it is
right for bidirectional use and when the keys include a memory longer than the segment) and read out
per key with take_relative: XL's "relative shift" as a gather, O(S·T) memory, with no garbage in the
upper triangle.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from .base import PositionalScheme
from .distance import heads_first


@dataclass(frozen=True, kw_only=True)
class TransformerXLOptions(PositionalKind):
    """Sinusoidal relative positions with learned content and position biases u, v."""

    PAPER = "Dai et al. 2019"
    COMPUTES = "(q+u)·k + (q+v)·W_R R_{i−j}"
    LOWERING = "sinusoids of the distances that occur, `Einsum`, `GatherElements` (the relative shift)"

    base: float = option(10000.0, doc="Wavelength base of R.", minimum=1.0)

    def problems(self, spec, where):
        if spec.model.width % 2:
            yield f"transformer_xl positions need an even width, got {spec.model.width}"

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def relative_sinusoids(ctx, distances, width: int, base: float):
    """[sin | cos](d · base^(-2i/width)) for every distance d, (R, width)."""
    distances = ctx.op("cast", distances, dtype="float32")
    inv_freq = ctx.constant(base ** (-np.arange(0, width, 2) / width))
    angles = ctx.op("mul", ctx.op("unsqueeze", distances, axes=(1,)), inv_freq)
    return ctx.op("concat", ctx.op("sin", angles), ctx.op("cos", angles), axis=-1, label="R")


def relative_attention(ctx, spec, parts, base: float, distances, index, more=None):
    """XL's two terms for the given distances (R of them) and each pair's index (S, T) into them: the
    position term (q + v)ᵀ W_R R, with `more(term)` added or applied (Funnel's segments and [CLS]
    mask), enters as a scaled bias; u joins the queries for the content term."""
    m = spec.model
    dh = ctx.type_of(parts.query).shape[-1]
    with ctx.at("relative"):
        sinusoids = relative_sinusoids(ctx, distances, m.width, base)
        r = heads_first(ctx, ctx.linear(sinusoids, m.heads * dh, "position", bias=False), m.heads, dh)
        u = ctx.param("content_bias", (m.heads, 1, dh), "zeros")
        v = ctx.param("position_bias", (m.heads, 1, dh), "zeros")
        per_distance = ctx.op("einsum", ctx.op("add", parts.query, v), r, equation="bhsd,lhd->bhsl")
        term = ctx.op("take_relative", per_distance, index, label="RelativeShift")
        if more is not None:
            term = more(term)
        parts.add_bias(ctx.op("mul", term, ctx.constant(np.float32(parts.scale))))
        parts.query = ctx.op("add", parts.query, u, label="ContentBias")
    return parts


def transformer_xl(ctx, options: TransformerXLOptions, spec, parts, site):
    with ctx.at("relative"):  # distances 1 - S ... T - 1: bidirectional, and keys may include a memory
        distances = ctx.op("distance_range", parts.query, parts.key)
        index = ctx.op("distance_index", parts.query, parts.key)
    return relative_attention(ctx, spec, parts, options.base, distances, index)


POSITIONS.register("transformer_xl", TransformerXLOptions, PositionalScheme(attend=transformer_xl), examples={
    "transformer_xl_decoder": """
topology: decoder
positional: {kind: transformer_xl}
decoder: {layers: 2}
head: {kind: lm}
""",
    "transformer_xl_encoder": """
topology: encoder
model: {head_width: 6}
positional: {kind: transformer_xl, base: 100}
encoder: {layers: 2}
""",
})
