"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), softmax attention approximated by
positive orthogonal random features

  φ(x) = exp(W x' - |x'|²/2) / √m,   x' = x / Dh^(1/4)

W (m, Dh) has orthogonal Gaussian blocks with rows scaled to chi-distributed norms; it is drawn
when the spec is compiled (from `seed` and the layer's path) and stored in the ONNX as a constant,
so every run uses the same features. The canonical `favor_attention` op (tfcompiler.ir.ops.favor)
computes the features and the linearised attention, so its lowering can take them by chunks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .linearised import no_score_positions
from .multi_head import key_padding, output_projection, project


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

    def problems(self, spec, where):
        yield from no_score_positions("performer", spec)


def orthogonal_features(features: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(features, width): stacked orthogonal blocks (QR of Gaussian matrices), rows rescaled to
    the norms of Gaussian vectors, as in the paper's ORF construction."""
    blocks = []
    for _ in range(-(-features // width)):
        q, _ = np.linalg.qr(rng.standard_normal((width, width)))
        blocks.append(q.T)
    matrix = np.concatenate(blocks)[:features]
    return matrix * np.linalg.norm(rng.standard_normal((features, width)), axis=1)[:, None]


def build_performer(ctx, options: PerformerOptions, spec, site):
    matrix = orthogonal_features(options.features, spec.model.dh, ctx.rng(options.seed))
    query, key, value = project(ctx, spec, site)
    context = ctx.op("favor_attention", query, key, value, ctx.constant(matrix.astype(np.float32)),
                     *key_padding(ctx, site), causal=site.causal, label="FavorAttention")
    return output_projection(ctx, spec, context)


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
