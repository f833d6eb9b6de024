"""Attention kind `rfa`: random feature attention (Peng et al. 2021). Queries and keys are
normalised to unit length and mapped by random Fourier features

  φ(x) = √(1/D) [sin(W x), cos(W x)],   W (D, Dh) ~ N(0, σ⁻² I)

so φ(q)·φ(k) approximates the Gaussian kernel exp(-|q - k|² / 2σ²). W is drawn when the spec is
compiled (from `seed` and the layer's path) and stored as a constant. With `gate` (decoders), the
running sums forget: g_t = σ(w_g·x_t + b_g) per head, S_t = g_t S_{t-1} + (1 - g_t) φ(k_t) v_tᵀ
(RFA-Gate); padded positions still gate, which in right-padded batches touches padding only and in
left-padded ones the zero sums before the first real token. In a decoder compiled with a cache the
(gated) sums are the layer's state (tfcompiler.builders.attention.linearised).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .linearised import attend_linear, no_score_positions


@dataclass(frozen=True, kw_only=True)
class RfaOptions(AttentionKind):
    """Random Fourier feature attention (Peng et al. 2021)."""

    PAPER = "Peng et al. 2021"
    COMPUTES = "random Fourier features on unit q, k; `gate` for RFA-Gate's forgetting recurrence (decoders)"
    LOWERING = "`linear_attention`"

    features: int = option(64, doc="D: random frequencies per head (2·D features).", minimum=1, shrink=cap(8))
    sigma: float = option(1.0, doc="σ: kernel width.", minimum=0.0)
    seed: int = option(0, doc="Seed of the random frequencies.", minimum=0)
    eps: float = option(1e-6, doc="Added to the normaliser.", minimum=0.0)
    gate: bool = option(False, doc="RFA-Gate: a learned forgetting gate per head (decoders).")

    no_cache_because: ClassVar[str] = ""  # causal: its (gated) running sums are the state (past_state.N.*)
    cached_as: ClassVar[str] = "the (gated) running sums (`past_state.N.kv_sum`, `.k_sum`): O(1) a step"

    def problems(self, spec, where):
        yield from no_score_positions("rfa", spec)
        if self.gate and spec.topology != "decoder":
            yield ("the rfa gate is a recurrence over past positions: it needs topology 'decoder', "
                   f"got '{spec.topology}'")

    # Measured against fp32 on unit-scale two-layer models (onnx's reference evaluator, six inputs each):
    # 32 features with sigma 0.7 are 10% off in fp16 and 107% in bf16, 8 gated features 57% and 141%,
    # 32 gated features with sigma 1.2 10% in bf16; Performer's positive features stay within 0.2% / 1.3%.
    refuses_low_precision: ClassVar[str] = (
        "is ill-conditioned in low precision: its normaliser (the query's random features dotted with the keys' "
        "summed features) adds sin/cos features of both signs and can come arbitrarily near zero, which "
        "amplifies their fp16/bf16 rounding without bound (measured: up to 10% off in fp16, over 100% in bf16)")


def fourier_features(ctx, x, matrix: np.ndarray):
    with ctx.at("random_features"):
        norm = ctx.op("sqrt", ctx.op("reduce_sum", ctx.op("mul", x, x), axes=(-1,)))
        unit = ctx.op("div", x, ctx.op("add", norm, ctx.constant(np.float32(1e-12))))
        angles = ctx.op("matmul", unit, ctx.constant(matrix.T.astype(np.float32)))
        scale = ctx.constant(np.float32(len(matrix) ** -0.5))
        return ctx.op("mul", ctx.op("concat", ctx.op("sin", angles), ctx.op("cos", angles), axis=-1), scale,
                      label="FourierFeatures")


def build_rfa(ctx, options: RfaOptions, spec, site):
    rng = ctx.rng(options.seed)
    matrix = rng.standard_normal((options.features, spec.model.dh)) / options.sigma
    gate = None
    if options.gate:  # (B, S, H) -> (B, H, S)
        gate = ctx.op("transpose", ctx.linear(site.x, spec.model.heads, "gate"), perm=(0, 2, 1))
    return attend_linear(ctx, spec, site, lambda c, x, q: fourier_features(c, x, matrix), options.eps, gate)


ATTENTION.register("rfa", RfaOptions, build_rfa, examples={
    "rfa_encoder": """
topology: encoder
block: {attention: {kind: rfa, features: 32, sigma: 0.7}}
encoder: {layers: 2}
""",
    "rfa_gated_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: rfa, features: 8, gate: true, seed: 3}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
