"""Positional scheme `funnel`: the relative attention of the Funnel Transformer (Dai et al. 2020,
appendix A.2.1; Hugging Face's attention_type "relative_shift"):

  A_ij = (q_i + u)ᵀ k_j + c_ij [(q_i + v)ᵀ W_R R(p_i - p_j) + (q_i + s)ᵀ E_{same(i, j)}]

Transformer-XL's two terms with distances in tokens of the input: after k poolings by the stride,
neighbouring states are stride^k tokens apart, and a pooling layer's queries sit one level coarser
than its keys (p = (i - c)·stride^k + c, c = 1 with separate_cls: [CLS] sits one window before the
first). E holds two learned vectors per head, picked by whether tokens i and j share a segment
(token_type_ids; type 2, [CLS], shares every segment); the types of a pooled state are its window's
first. With the stack's separate_cls, c_ij = 0 drops both terms wherever i or j is [CLS].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


from ...ir.types import BATCH, SEQUENCE
from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from .base import PositionalScheme
from .transformer_xl import relative_attention

CLS_TYPE = 2


@dataclass(frozen=True, kw_only=True)
class FunnelOptions(PositionalKind):
    """Funnel Transformer relative positions (and segments) at every pooling level."""

    PAPER = "Dai et al. 2020 (Funnel Transformer)"
    COMPUTES = ("Transformer-XL's terms with distances counted in input tokens at every pooling level, plus the "
                "segment term over `token_type_ids` ([CLS] = type 2)")
    LOWERING = "as `transformer_xl`, at each level's spacing; the segment term `Einsum` + `Equal` of the token types"
    no_cache_because: ClassVar[str] = "its distances are between pooled positions of the whole sequence"

    base: float = option(10000.0, doc="Wavelength base of R.", minimum=1.0)
    segments: bool = option(True, doc="Add the segment term: reads `token_type_ids` (0 and 1 the two "
                            "segments, 2 the [CLS] token).")

    def problems(self, spec, where):
        if spec.model.width % 2:
            yield f"funnel positions need an even width, got {spec.model.width}"
        if spec.topology != "encoder":
            yield f"funnel positions are bidirectional: they need topology 'encoder', got '{spec.topology}'"

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def funnel(ctx, options: FunnelOptions, spec, parts, site):
    resample = site.state.get("resample")
    stride = resample.stride if resample is not None else 1
    separate_cls = resample is not None and resample.separate_cls
    query_level, key_level = site.levels
    ratio = stride ** (query_level - key_level)
    with ctx.at("relative"):
        distances = ctx.op("spaced_distances", parts.query, parts.key, ratio=ratio, offset=int(separate_cls),
                           unit=stride ** key_level)
        index = ctx.op("spaced_distance_index", parts.query, parts.key, ratio=ratio)

    def segments_and_cls(term):  # inside the `relative` scope, before u joins the queries
        if options.segments:
            dh = ctx.type_of(parts.query).shape[-1]
            term = ctx.op("add", term, segment_term(ctx, spec, parts, site, dh), label="WithSegments")
        if separate_cls:
            term = ctx.op("mul", term, without_cls(ctx, parts), label="DropClsTerms")
        return term

    return relative_attention(ctx, spec, parts, options.base, distances, index, segments_and_cls)


def segment_term(ctx, spec, parts, site, dh):
    """(q_i + s)ᵀ E_same(i,j), (B, H, S, T): E_0 across segments, E_1 within one."""
    m = spec.model
    s = ctx.param("segment_bias", (m.heads, 1, dh), "zeros")
    table = ctx.param("segment_embedding", (2, m.heads, dh), "embedding")
    per_segment = ctx.op("einsum", ctx.op("add", parts.query, s), table, equation="bhsd,khd->bhsk")
    across, within = (ctx.op("unsqueeze", ctx.op("gather", per_segment, ctx.constant(i, dtype="int64"), axis=3),
                             axes=(3,)) for i in (0, 1))
    query_types, key_types = (types_at(ctx, site.state, level) for level in site.levels)
    same = ctx.op("equal", ctx.op("unsqueeze", query_types, axes=(2,)), ctx.op("unsqueeze", key_types, axes=(1,)))
    cls = [ctx.op("cast", ctx.op("equal", t, ctx.constant(CLS_TYPE, dtype="int64")), dtype="float32")
           for t in (query_types, key_types)]
    shared = ctx.op("add", ctx.op("cast", same, dtype="float32"),
                    ctx.op("add", ctx.op("unsqueeze", cls[0], axes=(2,)), ctx.op("unsqueeze", cls[1], axes=(1,))))
    shared = ctx.op("unsqueeze", ctx.op("clip", shared, high=1.0), axes=(1,), label="SameSegment")  # (B, 1, S, T)
    return ctx.op("add", across, ctx.op("mul", shared, ctx.op("sub", within, across)))


def types_at(ctx, state, level: int):
    """token_type_ids after `level` poolings (each window keeps its first), made once per stack."""
    key = ("token_types", level)
    if key not in state:
        if level == 0:
            state[key] = ctx.input("token_type_ids", "int64", (BATCH, SEQUENCE), role="token_type_ids", range=3)
        else:
            resample = state["resample"]
            state[key] = ctx.op("shorten", types_at(ctx, state, level - 1), mode="first", stride=resample.stride,
                                separate_cls=resample.separate_cls, truncate=resample.truncate)
    return state[key]


def without_cls(ctx, parts):
    """(S, T): 0 in the first row and column ([CLS] as query or key), 1 elsewhere."""
    def not_first(x):  # (1, L) float: 0 at position 0
        return ctx.op("cast", ctx.op("clip", ctx.op("positions", x, axis=2), high=1), dtype="float32")

    rows = ctx.op("transpose", not_first(parts.query), perm=(1, 0))
    return ctx.op("mul", rows, not_first(parts.key))


POSITIONS.register("funnel", FunnelOptions, PositionalScheme(attend=funnel), examples={
    "funnel_encoder": """
topology: encoder
input: {kind: tokens, token_types: 3}
positional: funnel
block: {placement: post}
encoder: {layers: 3, resample: {shorten_at: [1], upsample_at: 2, separate_cls: true}}
""",
})
