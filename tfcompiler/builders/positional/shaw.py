"""Positional scheme `shaw`: relative position representations (Shaw, Uszkoreit & Vaswani 2018).
Each self-attention learns vectors a^K and a^V for the clipped distances clip(j - i, -k, k), shared
by its heads:

  e_ij = q_i · (k_j + a^K_ij) / √d        z_i = Σ_j α_ij (v_j + a^V_ij)

The key term is computed per distance, q · a^Kᵀ (B, H, S, 2k+1), and read out per key with
take_relative (O(S·T) memory, no (S, T, Dh) tensor); it is an additive bias, so the fused attention
op stays in use unless the value term is on. The value term needs the probabilities, so it switches
attention to the explicit form and adds Σ_j α_ij a^V_ij = α (B,H,S,T) · a^V[bucket] (S,T,Dh).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .base import PositionalScheme
from .distance import bucket_index


@dataclass(frozen=True, kw_only=True)
class ShawOptions(PositionalKind):
    """Learned key (and value) vectors per clipped relative distance."""

    PAPER = "Shaw et al. 2018"
    COMPUTES = "learned key (and value) vectors per clipped distance"
    LOWERING = "q·aᴷ per distance + `GatherElements`; value term `Einsum` on the probabilities"

    max_distance: int = option(16, doc="k: distances are clipped to [-k, k].", minimum=1, shrink=cap(16))
    value_term: bool = option(True, doc="Also add the value vectors a^V (the paper's eq. 3).")

    numbers_from_segment_start: ClassVar[bool] = False  # positions enter as query-key distances


def shaw(ctx, options: ShawOptions, spec, parts, site):
    k, dh = options.max_distance, ctx.type_of(parts.query).shape[-1]
    with ctx.at("relative"):
        index = bucket_index(ctx, parts, lambda n: n + k, k)
        keys = ctx.param("key.weight", (2 * k + 1, dh), "embedding")
        per_distance = ctx.op("matmul", parts.query, ctx.op("transpose", keys, perm=(1, 0)))
        scores = ctx.op("take_relative", per_distance, index, label="ShawKeyTerm")
        parts.add_bias(ctx.op("mul", scores, ctx.constant(np.float32(parts.scale))))
        if options.value_term:
            values = ctx.op("gather", ctx.param("value.weight", (2 * k + 1, dh), "embedding"), index)

            def value_term(probs):
                with ctx.at("relative"):
                    return ctx.op("einsum", probs, values, equation="bhst,std->bhsd", label="ShawValueTerm")
            parts.value_terms.append(value_term)
    return parts


POSITIONS.register("shaw", ShawOptions, PositionalScheme(attend=shaw), examples={
    "shaw_decoder_gqa": """
topology: decoder
model: {kv_heads: 2}
positional: {kind: shaw, max_distance: 3}
decoder: {layers: 2}
head: {kind: lm}
""",
    "shaw_encoder_keys_only": """
topology: encoder
positional: {kind: shaw, max_distance: 2, value_term: false}
encoder: {layers: 2}
""",
})
