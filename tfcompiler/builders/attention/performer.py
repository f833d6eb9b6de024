"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), softmax attention approximated by
positive orthogonal random features

  φ(x) = exp(W x' - |x'|²/2) / √m,   x' = x / Dh^(1/4)

W (m, Dh) has orthogonal Gaussian blocks with rows scaled to chi-distributed norms; it is drawn
when the spec is compiled (from `seed` and the layer's path) and stored in the ONNX as a constant,
so every run uses the same features; with `projection: weights` it is the weight
`attention.projection` (m, Dh) instead, so that a trained model's matrix (performer-pytorch's
`fast_attention.projection_matrix`) loads. By default as the paper writes it; performer-pytorch's
conventions are options: `kernel_epsilon: 1e-4` (added to each stabilised feature), `padded_keys:
normaliser` (it zeroes padded keys' values only) and, causal, `normaliser_epsilon: 1e-6`. The
canonical `favor_attention` op (tfcompiler.ir.ops.favor) computes the features and the linearised
attention, so that its lowering can take them by chunks.
Causal in a decoder compiled with a cache, the layer's state is the running sums (per query head)
`kv_sum` (B, H, m, Dv) and `k_sum` (B, H, m) with `k_max` (B, H), the keys' stabiliser they were
summed under (tfcompiler.builders.attention.linearised).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.ops.favor import PAPER_CONVENTIONS
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
    projection: str = option("seeded", doc="seeded: W drawn from `seed` when the spec compiles (the paper's "
                             "orthogonal random features); weights: W is the weight `attention.projection` of shape "
                             "(features, head_width), e.g. performer-pytorch's `fast_attention.projection_matrix`.",
                             choices=("seeded", "weights"))
    kernel_epsilon: float = option(0.0, doc="ε added to each feature after its stabiliser c: φ(x) = (exp(W x' - "
                                   "|x'|²/2 - c) + ε) / √m (the paper: 0; performer-pytorch: 1e-4). With ε > 0, c "
                                   "no longer cancels: a query's c is the maximum of its own W x', the keys' the "
                                   "maximum over every key of the sequence (padded ones too) and every feature; a "
                                   "decoder then keeps no cache.", minimum=0.0)
    padded_keys: str = option("excluded", doc="excluded: a padded key adds nothing to Σ φ(k) vᵀ nor to the "
                              "normaliser Σ φ(k) (the paper's attention over the real keys); normaliser: its value "
                              "is zeroed but its features still count in the normaliser (performer-pytorch, which "
                              "masks the values only).", choices=("excluded", "normaliser"))
    normaliser_epsilon: float = option(0.0, doc="δ added to each feature of Σ φ(k) in the normaliser: out_i = "
                                       "φ(q_i)·Σ φ(k_j) v_jᵀ / φ(q_i)·(Σ φ(k_j) + δ) (the paper: 0; "
                                       "performer-pytorch, causal: 1e-6, bidirectional: 0). Like ε it is added "
                                       "after the stabiliser: with δ > 0 a decoder keeps no cache.", minimum=0.0)

    no_cache_because: ClassVar[str] = ""  # causal: running sums and their stabiliser (past_state.N.*)
    cached_as: ClassVar[str] = ("the running sums and the keys' stabiliser they are summed under "
                                "(`past_state.N.kv_sum`, `.k_sum`, `.k_max`): O(1) a step")

    def __post_init__(self):
        # this instance only (tfcompiler.builders.cache reads them): the kind caches, and padding changes
        # nothing, but not with these conventions
        if self.kernel_epsilon or self.normaliser_epsilon:
            object.__setattr__(self, "no_cache_because", (
                "kernel_epsilon and normaliser_epsilon are added after the keys' stabiliser, which grows with "
                "later keys: the running sums cannot be rescaled to it"))
        shifts = [why for why, asked in (("padded keys count in its normaliser (padded_keys: normaliser)",
                                          self.padded_keys == "normaliser"),
                                         ("its keys' stabiliser spans the padded keys (kernel_epsilon, "
                                          "normaliser_epsilon > 0)", self.kernel_epsilon or self.normaliser_epsilon))
                  if asked]
        if shifts:
            object.__setattr__(self, "left_padding_shifts", "; ".join(shifts))

    def problems(self, spec, where):
        yield from no_score_positions("performer", spec)

    def favor_attrs(self) -> dict:
        """The favor_attention op's convention attributes, only those not the paper's (so that a spec
        without them builds the op it always did)."""
        attrs = dict(kernel_epsilon=float(self.kernel_epsilon), padded_keys=self.padded_keys,
                     normaliser_epsilon=float(self.normaliser_epsilon))
        return {name: value for name, value in attrs.items() if value != PAPER_CONVENTIONS[name]}


def orthogonal_features(features: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(features, width): stacked orthogonal blocks (QR of Gaussian matrices), rows rescaled to
    the norms of Gaussian vectors, as in the paper's ORF construction."""
    q, _ = np.linalg.qr(rng.standard_normal((-(-features // width), width, width)))  # one QR per block, at once
    matrix = q.transpose(0, 2, 1).reshape(-1, width)[:features]
    return matrix * np.linalg.norm(rng.standard_normal((features, width)), axis=1)[:, None]


def projection(ctx, options: PerformerOptions, width: int):
    """W (m, Dh): the layer's weight, or drawn now from `seed` and the layer's path."""
    if options.projection == "weights":
        return ctx.param("projection", (options.features, width), "embedding")
    return ctx.constant(orthogonal_features(options.features, width, ctx.rng(options.seed)).astype(np.float32))


def build_performer(ctx, options: PerformerOptions, spec, site):
    query, key, value = project(ctx, spec, site)
    matrix = projection(ctx, options, spec.model.dh)
    mask = site.own_mask(ctx)
    heads, m = spec.model.heads, options.features
    past = past_states(ctx, site, {"kv_sum": (heads, m, spec.model.dh), "k_sum": (heads, m), "k_max": (heads,)})
    outputs = ctx.graph.add("favor_attention", [query, key, value, matrix,
                                                *([ctx.op("padding_bias", mask)] if mask is not None else []), *past],
                            dict(causal=site.causal, **options.favor_attrs(), **({"stateful": True} if past else {})),
                            origin=ctx.origin, label="FavorAttention")
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
    # the feature matrix loaded, not drawn: a trained model's own
    "performer_projection_weights": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: performer, features: 20, projection: weights}}
encoder: {layers: 2}
""",
    # performer-pytorch's conventions (its FastAttention, bidirectional)
    "performer_pytorch_encoder": """
topology: encoder
block: {attention: {kind: performer, features: 16, projection: weights, kernel_epsilon: 1e-4,
                    padded_keys: normaliser}}
encoder: {layers: 2}
""",
    # performer-pytorch's causal conventions; its ε leaves no cache
    "performer_pytorch_causal_decoder": """
topology: decoder
block: {attention: {kind: performer, features: 16, projection: weights, kernel_epsilon: 1e-4,
                    padded_keys: normaliser, normaliser_epsilon: 1e-6}}
decoder: {layers: 2}
head: {kind: lm}
""",
    # each convention large enough to move the output past the tests' tolerance
    "performer_conventions_encoder": """
topology: encoder
block: {attention: {kind: performer, features: 12, kernel_epsilon: 0.05, padded_keys: normaliser,
                    normaliser_epsilon: 0.02}}
encoder: {layers: 2}
""",
    # padded keys in the normaliser keep a cache (the running sums count them)
    "performer_padded_keys_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: performer, features: 12, padded_keys: normaliser}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "performer_epsilons_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: performer, features: 12, kernel_epsilon: 0.05, normaliser_epsilon: 0.02}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
