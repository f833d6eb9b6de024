"""Positional scheme `deberta`: disentangled attention (He et al. 2021; DeBERTa-v2/v3 as in
Hugging Face's DebertaV2Model).

  Ã_ij = q_i·k_j + q_i·K^r[δ(i, j)] + k_j·Q^r[δ(i, j)],   A = softmax(Ã / √(3·Dh))

δ is the query-minus-key distance, log-bucketed beyond half of `position_buckets` (or clipped to
±max_relative_positions without buckets), shifted into [0, 2·span). The relative embeddings (2·span,
D) belong to the stack (with an optional LayerNorm) and are projected by each layer's own query and
key projections (share_att_key). Both position terms are computed per bucket and read out with
take_relative (GatherElements), then pre-divided by √(3·Dh) and passed as an additive bias, so the
fused attention op keeps its scale = 1/√(3·Dh).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.model import Norm
from ...language.schema import option
from ...language.shrink_rules import cap
from ..norm import build_norm
from .base import PositionalScheme
from .distance import bucket_index, heads_first


@dataclass(frozen=True, kw_only=True)
class DebertaOptions(PositionalKind):
    """Disentangled content-to-position and position-to-content attention."""

    PAPER = "He et al. 2021"
    COMPUTES = "content→position and position→content terms, log buckets, 1/√(3d)"
    LOWERING = "`Einsum` + `GatherElements` into the attention bias"

    position_buckets: int = option(256, doc="Log buckets of the distance (0: plain clipping).", minimum=0,
                                   shrink=cap(8))
    max_relative_positions: int | None = option(None, doc="Largest distance the buckets span. "
                                                "Default: model.max_length.", minimum=2, shrink=cap(16))
    terms: list[str] = option(["c2p", "p2c"], doc="Position terms: c2p (content to position) and/or "
                              "p2c (position to content).")
    norm: bool = option(True, doc="LayerNorm on the relative embeddings (norm_rel_ebd).")
    norm_epsilon: float = option(1e-7, doc="Epsilon of that LayerNorm.", minimum=0.0)

    def problems(self, spec, where):
        if spec.model.kv != spec.model.heads:
            yield "deberta attention projects relative embeddings with the key projection: kv_heads must equal heads"
        if not self.terms or set(self.terms) - {"c2p", "p2c"} or len(set(self.terms)) != len(self.terms):
            yield f"terms must be c2p and/or p2c, got {self.terms}"

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def log_bucket(d: np.ndarray, buckets: int, max_position: int) -> np.ndarray:
    """DeBERTa's log bucket of distance d, rounded in float32 as its code does."""
    sign, mid = np.sign(d), buckets // 2
    magnitude = np.where((d < mid) & (d > -mid), mid - 1, np.abs(d)).astype(np.float32)
    logs = np.log(magnitude / np.float32(mid)) / np.log(np.float32((max_position - 1) / mid))
    log_position = np.ceil(logs * np.float32(mid - 1)) + mid
    return np.where(magnitude <= mid, d, log_position * sign).astype(np.int64)


def deberta(ctx, options: DebertaOptions, spec, parts, site):
    m = spec.model
    max_position = options.max_relative_positions or m.max_length
    span = options.position_buckets or max_position
    dh = ctx.type_of(parts.query).shape[-1]
    stack = site.state["stack"]
    key = ("deberta", stack, repr(options))
    if key not in site.state:
        with ctx.at_path(f"{stack}.relative_embeddings"):
            table = ctx.param("weight", (2 * span, m.width), "embedding")
            if options.norm:
                table = build_norm(ctx, table, Norm(epsilon=options.norm_epsilon), "norm")
        site.state[key] = table
    table = site.state[key]

    def index_of(n):  # δ(i, j) + span, clamped: n = j - i, δ buckets i - j
        d = -n
        delta = log_bucket(d, options.position_buckets, max_position) if options.position_buckets else d
        return np.clip(delta + span, 0, 2 * span - 1)

    reach = 2 * max_position  # every bucket index is constant beyond it (checked in the tests)
    terms = []
    if "c2p" in options.terms:  # the layer's own key projection (share_att_key), outside `relative`
        keys = heads_first(ctx, ctx.linear(table, m.heads * dh, "key", m.bias), m.heads, dh)
        with ctx.at("relative"):
            per_bucket = ctx.op("einsum", parts.query, keys, equation="bhsd,rhd->bhsr")
            terms.append(ctx.op("take_relative", per_bucket, bucket_index(ctx, parts, index_of, reach),
                                label="ContentToPosition"))
    if "p2c" in options.terms:
        queries = heads_first(ctx, ctx.linear(table, m.heads * dh, "query", m.bias), m.heads, dh)
        with ctx.at("relative"):
            per_bucket = ctx.op("einsum", parts.key, queries, equation="bhtd,rhd->bhtr")
            by_key = ctx.op("take_relative", per_bucket, bucket_index(ctx, parts, index_of, reach, transpose=True))
            terms.append(ctx.op("transpose", by_key, perm=(0, 1, 3, 2), label="PositionToContent"))
    parts.scale = parts.scale / math.sqrt(1 + len(options.terms))
    total = terms[0] if len(terms) == 1 else ctx.op("add", *terms)
    return parts.add_bias(ctx.op("mul", total, ctx.constant(np.float32(parts.scale))))


POSITIONS.register("deberta", DebertaOptions, PositionalScheme(attend=deberta), examples={
    "deberta_encoder": """
topology: encoder
positional: {kind: deberta, position_buckets: 8, max_relative_positions: 10}
embedding: {norm: layer_norm, norm_epsilon: 1e-7}
block: {placement: post, norm: {epsilon: 1e-7}}
encoder: {layers: 2}
""",
    "deberta_unbucketed_c2p": """
topology: encoder
positional: {kind: deberta, position_buckets: 0, max_relative_positions: 4, terms: [c2p], norm: false}
encoder: {layers: 2}
""",
})
