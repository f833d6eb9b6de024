"""Attention kind `multi_head`: scaled dot-product attention over H query heads and Hkv key/value
heads (Hkv = H: multi-head, Vaswani et al. 2017; Hkv = 1: multi-query, Shazeer 2019; between:
grouped-query, Ainslie et al. 2023), with the field's multi-head options:

- query/key normalisation per head (OLMo 2, Qwen 3) and logit soft-capping (Gemma 2);
- talking heads (Shazeer et al. 2020): learned (H, H) head mixing of the scores before the
  softmax and/or of the probabilities after it (x-transformers' residual `sim + conv(sim)` is the
  mixing matrix I + W);
- residual attention scores (RealFormer, He et al. 2021): each layer adds the previous layer's
  pre-softmax scores (position biases included, masks not) to its own;
- restricted and multi-scale spans, adaptive span and a Gaussian distance prior (priors.py).

Built as projections + :func:`emit_attention`, which keeps the canonical fused `attention` op
unless talking heads, residual scores or a value term need the explicit scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION, POSITIONS, AttentionKind
from ...language.model import Norm
from ...language.schema import option
from ...language.shrink_rules import per_head
from ..norm import build_norm
from .parts import AttentionParts, Site, emit_attention
from .priors import AdaptiveSpan, adaptive_span_bias, gaussian_bias, window_bias


@dataclass(frozen=True, kw_only=True)
class MultiHeadOptions(AttentionKind):
    """Scaled dot-product attention over query heads and key/value heads (`model.kv_heads`: MQA, GQA)."""

    PAPER = "Vaswani et al. 2017; multi-query Shazeer 2019; grouped-query Ainslie et al. 2023"
    COMPUTES = ("scaled dot-product attention over `heads` query heads and `model.kv_heads` key/value heads, with the "
                "multi-head options (qk_norm, softcap, talking heads, residual scores, spans, adaptive span, Gaussian "
                "prior)")
    LOWERING = ("the fused `Attention` (opset 23) or MatMul/Softmax/MatMul; explicit scores for talking heads and "
                "residual scores")
    no_cache_because: ClassVar[str] = ""  # a new query reads past keys and values only

    scale: float | None = option(None, doc="Score scale. Default 1/√head_width (T5 uses 1).",
                                 minimum=0.0)
    qk_norm: str | None = option(None, doc="Normalise each head's queries and keys over the head "
                                 "width before positions are applied (OLMo 2, Qwen 3; Dehghani et al. "
                                 "2023), with a learned scale.", choices=("rms_norm", "layer_norm"))
    qk_norm_epsilon: float = option(1e-6, doc="Epsilon of the query/key norm.", minimum=0.0)
    softcap: float | None = option(None, doc="Soft-cap the scaled scores: c·tanh(s/c) (Gemma 2).",
                                   minimum=0.0)
    talking_heads: str = option("none", doc="Learned (H, H) mixing of the heads' scores before the "
                                "softmax (pre), of their probabilities after it (post), or both "
                                "(Shazeer et al. 2020).", choices=("none", "pre", "post", "both"))
    residual_scores: bool = option(False, doc="Add the previous self-attention layer's pre-softmax "
                                   "scores to this layer's (RealFormer).")
    span: list[int] | None = option(None, doc="Restricted spans: keys with |i - j| > span are "
                                    "hidden; one span for every head or one per head (multi-scale).",
                                    shrink=per_head(cap=4))
    adaptive_span: AdaptiveSpan | None = option(None, doc="A learned soft span per head "
                                                "(Sukhbaatar et al. 2019).")
    gaussian_prior: bool = option(False, doc="Add -w_h·(i - j)² with a learned w_h per head "
                                  "(Gaussian Transformer).")

    def problems(self, spec, where):
        if self.span is not None and len(self.span) not in (1, spec.model.heads):
            yield f"span needs 1 or {spec.model.heads} (one per head) values, got {len(self.span)}"
        if self.span is not None and min(self.span, default=0) < 0:
            yield f"spans must be >= 0, got {self.span}"


def key_padding(ctx, site: Site) -> list:
    """[the key padding bias (B, 1, 1, T)] of a site with a mask, else []: a canonical op's optional input."""
    return [ctx.op("padding_bias", site.mask)] if site.mask is not None else []


def with_leading_real(ctx, mask):
    """(B, T) padding mask -> (B, 1 + T): one more real position in front (a relay, a null key)."""
    first = ctx.op("gather", mask, ctx.constant([0], dtype="int64"), axis=1)  # (B, 1)
    one = ctx.op("add", ctx.op("mul", first, ctx.constant(0, dtype="int64")), ctx.constant(1, dtype="int64"))
    return ctx.op("concat", one, mask, axis=1)


def output_projection(ctx, spec, context):
    """Heads' context (B, H, S, Dv) -> (B, S, D) through the attention's output projection."""
    return ctx.linear(ctx.merge_heads(context), spec.model.width, "output", spec.model.bias)


def project(ctx, spec, site: Site):
    """Queries (B,H,S,Dh), keys and values (B,Hkv,T,Dh) of the site."""
    m = spec.model
    query = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query", m.bias), m.heads, m.dh)
    return (query,) + keys_and_values(ctx, MultiHeadOptions(), spec, site.memory)


def keys_and_values(ctx, options: MultiHeadOptions, spec, memory):
    """Keys and values (B, Hkv, T, Dh) of what an attention reads, the keys normalised as its options
    say: an encoder-decoder's encoder model computes them once for the decoder's cross-attentions."""
    m = spec.model
    key = ctx.split_heads(ctx.linear(memory, m.kv * m.dh, "key", m.bias), m.kv, m.dh)
    value = ctx.split_heads(ctx.linear(memory, m.kv * m.dh, "value", m.bias), m.kv, m.dh)
    if options.qk_norm:
        key = build_norm(ctx, key, Norm(kind=options.qk_norm, epsilon=options.qk_norm_epsilon), "key_norm", bias=False)
    return key, value


def build_multi_head(ctx, options: MultiHeadOptions, spec, site: Site, pattern=None, mask=None):
    """``pattern``: a static sparse pattern for the position-based sparse kinds (self-attention);
    ``mask(ctx, query, key)``: an additive mask of a self-attention whose pattern depends on the length."""
    m = spec.model
    query = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query", m.bias), m.heads, m.dh)
    if options.qk_norm:
        norm = Norm(kind=options.qk_norm, epsilon=options.qk_norm_epsilon)
        query = build_norm(ctx, query, norm, "query_norm", bias=False)
    key, value = site.cross_kv if site.cross_kv is not None else keys_and_values(ctx, options, spec, site.memory)
    masks = [mask(ctx, query, key)] if mask is not None and site.is_self else []
    return attend(ctx, options, spec, site, query, key, value, pattern, masks)


def attend(ctx, options: MultiHeadOptions, spec, site: Site, query, key, value, pattern=None, masks=()):
    """Positions, priors, masks and head options on projected heads; returns (B, S, D)."""
    return output_projection(ctx, spec, attention_context(ctx, options, spec, site, query, key, value, pattern,
                                                          masks))


def attention_context(ctx, options: MultiHeadOptions, spec, site: Site, query, key, value, pattern=None,
                      masks=()):
    """attend() up to the heads' context (B, H, S, Dv); ``masks`` are further additive masks."""
    m = spec.model
    scale = options.scale if options.scale is not None else ctx.type_of(query).shape[-1] ** -0.5
    parts = AttentionParts(query, key, value, scale=scale, causal=site.causal,
                           softcap=float(options.softcap or 0.0), pattern=pattern if site.is_self else None)
    if site.mask is not None:
        parts.mask_biases.append(ctx.op("padding_bias", site.mask))
    parts.mask_biases.extend(masks)
    if site.is_self:  # the input's terms over query-key pairs (a graph's adjacency and edges)
        for term in site.state.get("pair_terms", ()):
            term(ctx, spec, parts)
    scheme = POSITIONS.builder(site.positional) if site.positional is not None else None
    if scheme is not None and scheme.rotate is not None:
        parts = scheme.rotate(ctx, site.positional, spec, parts, site)
    bound = pattern.distance_bound() if pattern is not None and site.causal else None
    if options.residual_scores:  # the next layer adds these scores: its keys must be as many
        bound = None
    parts.key, parts.value = site.extend(ctx, parts.key, parts.value, keep=bound)
    if scheme is not None and scheme.attend is not None:
        parts = scheme.attend(ctx, site.positional, spec, parts, site)
    if options.span is not None:
        parts.add_bias(window_bias(ctx, parts, options.span, m.heads), hides_keys=True)
    if options.adaptive_span is not None:
        parts.add_bias(adaptive_span_bias(ctx, parts, options.adaptive_span, m.heads), hides_keys=True)
    if options.gaussian_prior:
        parts.add_bias(gaussian_bias(ctx, parts, m.heads))
    mixes = {}
    for when in ("pre", "post"):
        if options.talking_heads in (when, "both"):
            mixes[when] = ctx.param(f"talking_heads.{when}", (m.heads, m.heads), "identity")
    residual = options.residual_scores and site.is_self
    context, scores = emit_attention(ctx, parts, mixes.get("pre"), mixes.get("post"),
                                     site.state.get("scores") if residual else None, keep_scores=residual)
    if residual:
        site.state["scores"] = scores
    return context


ATTENTION.register("multi_head", MultiHeadOptions, build_multi_head, examples={
    "qk_norm_softcap_rope": """
topology: decoder
model: {kv_heads: 2}
positional: {kind: rope}
block: {attention: {kind: multi_head, qk_norm: rms_norm, softcap: 2.0}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "qk_layer_norm_encoder": """
topology: encoder
block: {attention: {qk_norm: layer_norm, qk_norm_epsilon: 1e-5, softcap: 5.0}}
encoder: {layers: 1}
""",
    "talking_heads_residual_alibi": """
topology: decoder
positional: alibi
block: {attention: {talking_heads: both, residual_scores: true}}
decoder: {layers: 3}
head: {kind: lm}
""",
    "talking_heads_pre_encoder": """
topology: encoder
block: {attention: {talking_heads: pre}}
encoder: {layers: 2}
""",
    "multi_scale_spans": """
topology: encoder
block: {attention: {span: [1, 2, 4, 8]}}
encoder:
  layers: 2
  overrides:
    - layers: [1, 1]
      block: {attention: {span: [3]}}
""",
    "adaptive_span_decoder": """
topology: decoder
block: {attention: {adaptive_span: {max_span: 4, ramp: 2}}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "zeroed_padded_queries_seq2seq": """
topology: encoder-decoder
positional: rope
block: {attention: {padded_queries: zero}}
encoder: {layers: 1}
decoder: {layers: 2}
head: {kind: lm}
""",
    "gaussian_prior_encoder": """
topology: encoder
positional: none
block: {attention: {gaussian_prior: true}}
encoder: {layers: 2}
""",
})
