"""Positional scheme `transformer_xl`: the relative attention of Transformer-XL (Dai et al. 2019).

  A_ij = (q_i + u)ᵀ k_j + (q_i + v)ᵀ W_R R_{i-j}

R is the sinusoidal embedding ([sin | cos], as XL's code) of the query-minus-key distance, W_R a
per-layer projection, u and v learned per layer and head; both terms take the usual 1/√d scale.
The position term is computed once per distance that occurs (distance_range: 1-S ... T-1, so it is
right for bidirectional use and when the keys include a memory longer than the segment) and read out
per key with take_relative: XL's "relative shift" as a gather, O(S·T) memory, with no garbage in the
upper triangle.

`form: learned` is labml-nn's variant: no sinusoids and no v, a learned per-head key vector R_d and a
per-head scalar S_d for each distance d,

  A_ij = (q_i + u)ᵀ k_j + q_iᵀ R_{i-j} + S_{i-j}        (all scaled by 1/√d)

with one table row per distance that can occur, 1 - max_length ... max_length + memory - 1 (labml
keeps 2·4096 rows, row P - d for distance d); distances past the table reuse its edge rows.
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
    COMPUTES = "(q+u)·k + (q+v)·W_R R_{i−j}; learned: (q+u)·k + q·R_{i−j} + S_{i−j}"
    LOWERING = "sinusoids of the distances that occur, `Einsum`, `GatherElements` (the relative shift)"

    base: float = option(10000.0, doc="Wavelength base of R (sinusoidal form).", minimum=1.0)
    form: str = option("sinusoidal", doc="sinusoidal: Dai et al.'s R_{i-j} = W_R·sinusoid, with biases u and v; "
                       "learned: labml-nn's learned per-head key vector and per-head bias per distance, with u "
                       "and no v.", choices=("sinusoidal", "learned"))

    def problems(self, spec, where):
        if self.form == "sinusoidal" and spec.model.width % 2:
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


def learned_distances(spec) -> tuple[int, int]:
    """The distances a learned table covers: queries up to max_length, keys up to max_length plus the
    segment memory before them."""
    memory = spec.decoder.memory if spec.decoder is not None else 0
    return 1 - spec.model.max_length, spec.model.max_length + memory - 1


def learned_relative_attention(ctx, spec, parts, distances, index):
    """labml-nn's terms: q·R_d + S_d per distance that occurs, read out per key, as a scaled bias; u
    joins the queries for the content term."""
    m = spec.model
    dh = ctx.type_of(parts.query).shape[-1]
    low, high = learned_distances(spec)
    with ctx.at("relative"):
        rows = ctx.op("add", ctx.op("clip", distances, low=low, high=high), ctx.constant(-low, "int64"))
        keys = ctx.op("gather", ctx.param("key.weight", (high - low + 1, m.heads, dh), "embedding"), rows)
        biases = ctx.op("gather", ctx.param("key_bias", (high - low + 1, m.heads), "zeros"), rows)
        per_distance = ctx.op("add", ctx.op("einsum", parts.query, keys, equation="bhsd,lhd->bhsl"),
                              ctx.op("unsqueeze", ctx.op("transpose", biases, perm=(1, 0)), axes=(1,)))
        term = ctx.op("take_relative", per_distance, index, label="RelativeShift")
        parts.add_bias(ctx.op("mul", term, ctx.constant(np.float32(parts.scale))))
        u = ctx.param("content_bias", (m.heads, 1, dh), "zeros")
        parts.query = ctx.op("add", parts.query, u, label="ContentBias")
    return parts


def transformer_xl(ctx, options: TransformerXLOptions, spec, parts, site):
    with ctx.at("relative"):  # distances 1 - S ... T - 1: bidirectional, and keys may include a memory
        distances = ctx.op("distance_range", parts.query, parts.key)
        index = ctx.op("distance_index", parts.query, parts.key)
    if options.form == "learned":
        return learned_relative_attention(ctx, spec, parts, distances, index)
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
    "transformer_xl_learned_decoder": """
topology: decoder
model: {kv_heads: 2}
positional: {kind: transformer_xl, form: learned}
block: {placement: pre}
decoder: {layers: 2}
head: {kind: lm}
""",
})
