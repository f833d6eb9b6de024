"""Positional scheme `music`: the relative attention of the Music Transformer (Huang et al. 2018),
causal. Each head learns one vector per distance 0 .. L-1 to the past (E_r, (H, L, Dh)); the
relative logits Q E_rᵀ are computed per distance and "skewed" into per-key position:

  S_rel[i, j] = q_i · E_r[i' - j],   A = softmax((Q Kᵀ + S_rel) / √Dh) V

The skew (pad, reshape, slice in the paper) is a gather by distance here (take_relative): the same
O(S·T) memory as the paper's skew, and it stays right when the keys are longer than the queries.
Distances past L - 1 share E_r[L - 1].
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class MusicOptions(PositionalKind):
    """Learned per-head embeddings of the distance to each past key."""

    PAPER = "Huang et al. 2018"
    COMPUTES = "per-head learned vector per past distance, causal"
    LOWERING = "`Einsum` + `GatherElements` (the skew)"

    max_distance: int | None = option(None, doc="L: distances learned. Default: model.max_length.",
                                      minimum=1, shrink=cap(16))

    def problems(self, spec, where):
        if spec.topology != "decoder":
            yield f"music relative attention is causal: it needs topology 'decoder', got '{spec.topology}'"

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def music(ctx, options: MusicOptions, spec, parts, site):
    m = spec.model
    dh, length = ctx.type_of(parts.query).shape[-1], options.max_distance or m.max_length
    with ctx.at("relative"):
        table = ctx.param("weight", (m.heads, length, dh), "embedding")
        past = ctx.op("clip", ctx.op("positions", parts.key, axis=2), low=0, high=length - 1)  # (1, T)
        per_distance = ctx.op("einsum", parts.query, ctx.op("gather", table, past, axis=1),
                              equation="bhsd,hxtd->bhst")
        distance = ctx.op("clip", ctx.op("neg", ctx.op("relative_distance", parts.query, parts.key)), low=0)
        skewed = ctx.op("take_relative", per_distance, distance, label="Skew")
        parts.add_bias(ctx.op("mul", skewed, ctx.constant(np.float32(parts.scale))))
    return parts


POSITIONS.register("music", MusicOptions, PositionalScheme(attend=music), examples={
    "music_decoder": """
topology: decoder
positional: {kind: music, max_distance: 6}
decoder: {layers: 2}
head: {kind: lm}
""",
})
