"""Attention kind `linear`: linear attention with φ(x) = elu(x) + 1 (Katharopoulos et al. 2020,
"Transformers are RNNs"), causal (running sums) or bidirectional; time and memory linear in the
length. `eps` is added to the normaliser as in fast-transformers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from .linearised import attend_linear, no_score_positions


@dataclass(frozen=True, kw_only=True)
class LinearOptions(AttentionKind):
    """Linear attention with elu + 1 features (Katharopoulos et al. 2020)."""

    PAPER = "Katharopoulos et al. 2020"
    COMPUTES = "elu+1 feature maps, causal or bidirectional"
    LOWERING = "`linear_attention`: MatMul; causal in chunks of 64 (exact, memory O(n·64), no per-position F×Dv state)"

    eps: float = option(1e-6, doc="Added to the normaliser.", minimum=0.0)

    no_cache_because: ClassVar[str] = ""  # causal: its running sums are the state (past_state.N.*)
    cached_as: ClassVar[str] = "the running sums Σφ(k)vᵀ, Σφ(k) (`past_state.N.kv_sum`, `.k_sum`): O(1) a step"

    def problems(self, spec, where):
        yield from no_score_positions("linear", spec)


def elu_plus_one(ctx, x, is_query):
    return ctx.op("add", ctx.op("elu", x), ctx.constant(1.0), label="EluPlusOne")


def build_linear(ctx, options: LinearOptions, spec, site):
    return attend_linear(ctx, spec, site, elu_plus_one, options.eps)


ATTENTION.register("linear", LinearOptions, build_linear, examples={
    "linear_causal_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: linear}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "linear_bidirectional_encoder": """
topology: encoder
positional: sinusoidal
block: {attention: {kind: linear, eps: 1e-4}}
encoder: {layers: 2}
""",
})
