"""Attention kind `prob_sparse`: Informer's ProbSparse self-attention (Zhou et al. 2021), encoder
only the u = factor·⌈ln S⌉ queries with the most peaked score distribution (measured on a sample
of factor·⌈ln T⌉ keys) attend in full; the others output the mean of the values, or in decoders
(Informer's masked self-attention) the running sum of the values up to them, the chosen queries
attending causally. The key sample is evenly spaced rather than random, so the model is
deterministic (see tfcompiler.ir.ops.prob_sparse). With `counts: hugging_face` the counts are Hugging Face's
InformerProbSparseAttention's: it draws min(c·S·⌈ln(1 + T)⌉, T) = T keys at random (with replacement), here
every key once, and u = c·⌈ln(1 + S)⌉ queries attend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from .linearised import no_score_positions
from .multi_head import key_padding, output_projection, project


@dataclass(frozen=True, kw_only=True)
class ProbSparseOptions(AttentionKind):
    """Informer's ProbSparse attention (Zhou et al. 2021)."""

    PAPER = "Informer (Zhou et al. 2021)"
    COMPUTES = ("the c·⌈ln S⌉ most peaked queries attend, the rest output mean(V) (decoders: causal, running sums of "
                "V); deterministic sample of the real keys, padded queries ranked last")
    LOWERING = "`prob_sparse_attention`: TopK, ScatterElements"

    no_cache_because: ClassVar[str] = ("the queries that attend in full are the factor·⌈ln S⌉ most peaked of the "
                                       "whole input's, measured on a sample spread over all its keys, so a new token "
                                       "changes earlier tokens' outputs")

    factor: int = option(5, doc="c: sampled keys c·⌈ln T⌉ and active queries c·⌈ln S⌉.", minimum=1)
    counts: str = option("informer", doc="informer: c·⌈ln T⌉ sampled keys, c·⌈ln S⌉ active queries (the paper's "
                         "code); hugging_face: every key in the measure (Hugging Face draws T keys at random with "
                         "replacement; fixed, each key once) and c·⌈ln(1 + S)⌉ active queries.",
                         choices=("informer", "hugging_face"))

    def problems(self, spec, where):
        yield from no_score_positions("prob_sparse", spec)


def build_prob_sparse(ctx, options: ProbSparseOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    inputs = [query, key, value] + key_padding(ctx, site)
    counts = {"counts": options.counts} if options.counts != "informer" else {}
    context = ctx.op("prob_sparse_attention", *inputs, factor=options.factor, scale=float(m.dh ** -0.5),
                     causal=site.causal, label="ProbSparse", **counts)
    return output_projection(ctx, spec, context)


ATTENTION.register("prob_sparse", ProbSparseOptions, build_prob_sparse, examples={
    "informer_prob_sparse": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: prob_sparse, factor: 1}}
encoder: {layers: 2}
""",
    "hugging_face_prob_sparse_decoder": """
topology: decoder
block: {attention: {kind: prob_sparse, factor: 1, counts: hugging_face}}
decoder: {layers: 1}
head: {kind: lm, tied: false}
""",
    "informer_prob_sparse_decoder": """
topology: decoder
block: {attention: {kind: prob_sparse, factor: 1}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
