"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), softmax attention approximated by
positive orthogonal random features

  φ(x) = exp(W x' - |x'|²/2) / √m,   x' = x / Dh^(1/4)

W (m, Dh) has orthogonal Gaussian blocks with rows scaled to chi-distributed norms; it is drawn
when the spec is compiled (from `seed` and the layer's path) and stored in the ONNX as a constant,
so every run uses the same features. The canonical `favor_attention` op (tfcompiler.ir.ops.favor)
computes the features and the linearised attention, so its lowering can take them by chunks.
Causal in a decoder compiled with a cache, the layer's state is the running sums (per query head)
`kv_sum` (B, H, m, Dv) and `k_sum` (B, H, m) with `k_max` (B, H), the keys' stabiliser they were
summed under (tfcompiler.builders.attention.linearised).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .linearised import SUMS, no_score_positions, past_states, present_states
from .multi_head import output_projection, project


@dataclass(frozen=True, kw_only=True)
class PerformerOptions(AttentionKind):
    """FAVOR+ positive orthogonal random features (Choromanski et al. 2021)."""

    PAPER = "Choromanski et al. 2021"
    COMPUTES = "FAVOR+ positive orthogonal random features (constants fixed at compile time)"
    LOWERING = ("`favor_attention`: bidirectional, keys then queries by chunks of 512 tokens in `Loop`s (each key "
                "chunk stabilised by its own maximum, rescaled after), so the (S, m) features never exist whole; "
                "causal, the features whole and `linear_attention`'s causal lowering")

    features: int = option(64, doc="m: random features per head.", minimum=1, shrink=cap(8))
    seed: int = option(0, doc="Seed of the random features.", minimum=0)

    no_cache_because: ClassVar[str] = ""  # causal: running sums and their stabiliser (past_state.N.*)
    cached_as: ClassVar[str] = ("the running sums and the keys' stabiliser they are summed under "
                                "(`past_state.N.kv_sum`, `.k_sum`, `.k_max`): O(1) a step")

    def problems(self, spec, where):
        yield from no_score_positions("performer", spec)


def orthogonal_features(features: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(features, width): stacked orthogonal blocks (QR of Gaussian matrices), rows rescaled to
    the norms of Gaussian vectors, as in the paper's ORF construction."""
    q, _ = np.linalg.qr(rng.standard_normal((-(-features // width), width, width)))  # one QR per block, at once
    matrix = q.transpose(0, 2, 1).reshape(-1, width)[:features]
    return matrix * np.linalg.norm(rng.standard_normal((features, width)), axis=1)[:, None]


def build_performer(ctx, options: PerformerOptions, spec, site):
    matrix = orthogonal_features(options.features, spec.model.dh, ctx.rng(options.seed))
    query, key, value = project(ctx, spec, site)
    mask = site.own_mask(ctx)
    heads, m = spec.model.heads, options.features
    past = past_states(ctx, site, {"kv_sum": (heads, m, spec.model.dh), "k_sum": (heads, m), "k_max": (heads,)})
    outputs = ctx.graph.add("favor_attention", [query, key, value, ctx.constant(matrix.astype(np.float32)),
                                                *([ctx.op("padding_bias", mask)] if mask is not None else []), *past],
                            dict(causal=site.causal, **({"stateful": True} if past else {})), origin=ctx.origin,
                            label="FavorAttention")
    present_states(site, SUMS + ("k_max",), outputs[1:])
    return output_projection(ctx, spec, outputs[0])


ATTENTION.register("performer", PerformerOptions, build_performer, examples={
    "performer_encoder": """
topology: encoder
block: {attention: {kind: performer, features: 24, seed: 3}}
encoder: {layers: 2}
""",
    "performer_causal_decoder": """
topology: decoder
block: {attention: {kind: performer, features: 16}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
