"""One attention between projection and emission: what positional schemes and attention options
change (queries, keys, scale, additive biases, terms that need the probabilities), and the one
function that emits it.

The fused form is the canonical IR ``attention`` op (lowered to ONNX Attention at opset 23, the
decomposed MatMul/Softmax/MatMul form below). The explicit form (attention_scores -> biases and
masks -> softmax -> attention_context) is used only when something needs the scores or the
probabilities themselves: talking heads (Shazeer et al. 2020), residual scores (RealFormer, He et
al. 2021) and Shaw et al.'s value term.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Site:
    """Where an attention sits: its input, what it attends (x itself for self-attention), the key
    padding mask (B, T) or None, causality, the positions (1, S) and positional scheme of a
    self-attention (None for cross-attention), and the stack's state shared across its layers.
    Key positions default to the query positions (keys made from the same tokens)."""

    x: Any
    memory: Any
    mask: Any
    causal: bool
    positions: Any = None
    positional: Any = None
    state: dict = field(default_factory=dict)
    key_positions: Any = None  # (1, T) when the keys are not the queries' own tokens (a memory)
    recurrent: bool = False  # keys are earlier segments' states followed by x itself (Transformer-XL)
    levels: tuple[int, int] = (0, 0)  # poolings between the tokens and the queries, and the keys (Funnel)
    cache: Any = None  # a decoder's LayerCache: the keys are the past ones followed by x's own
    cross_kv: Any = None  # (keys, values) of a cross-attention that the encoder model computed, memory None
    query_shift: int = 0  # added to the queries' positions by rotary positions (lucidrains' local attention)

    def extend(self, ctx, key, value, keep: int | None = None):
        """The keys and values attended: the cached past ones, then the new ones (the cache keeps the
        last `keep` when later queries reach no further)."""
        return self.cache.extend(ctx, key, value, keep) if self.cache is not None else (key, value)

    def own_mask(self, ctx):
        """The padding mask (B, S) of x's own tokens, or None: with a cache the mask covers the past
        keys too, and a layer that carries a fixed-size state reads only the new tokens'."""
        if self.cache is None or self.mask is None:
            return self.mask
        return ctx.op("trailing", self.mask, self.x, axis=1, like_axis=1, label="NewTokensMask")

    @property
    def is_self(self) -> bool:
        return self.memory is self.x or self.recurrent


@dataclass
class AttentionParts:
    """softmax(scale · q kᵀ + position biases + masks) v (+ value terms), per head."""

    query: Any  # (B, H, S, Dh)
    key: Any  # (B, Hkv, T, Dh)
    value: Any  # (B, Hkv, T, Dv)
    scale: float
    causal: bool
    softcap: float = 0.0
    position_biases: list = field(default_factory=list)  # in scaled-score units, (1|B, H|1, S, T)
    mask_biases: list = field(default_factory=list)
    value_terms: list[Callable] = field(default_factory=list)  # probs (B,H,S,T) -> (B,H,S,Dv)
    hiding: int = 0  # position biases that hide keys with the masked value
    pattern: Any = None  # a static sparse pattern (tfcompiler.ir.patterns): keys outside it hidden

    def add_bias(self, bias, hides_keys: bool = False) -> "AttentionParts":
        self.position_biases.append(bias)
        self.hiding += hides_keys
        return self


def _sum(ctx, values, label, hiding: int = 0):
    """Sum biases; where two of them can hide one key, the sum is clipped at the masked value, so a
    key hidden twice is not -inf (a row hidden everywhere stays finite instead of turning NaN)."""
    out = values[0]
    for v in values[1:]:
        out = ctx.op("add", out, v, label=label)
    if hiding >= 2:
        out = ctx.op("mask_floor", out, label="MaskFloor")
    return out


def emit_attention(ctx, parts: AttentionParts, pre_mix=None, post_mix=None, carried=None,
                   keep_scores: bool = False):
    """Emit the attention; returns (context (B, H, S, Dv), scores or None). pre_mix / post_mix are
    (H, H) head-mixing matrices applied to the scores and to the probabilities; ``carried`` is the
    previous layer's scores, added to this layer's; with ``keep_scores`` the pre-softmax scores
    (before padding and causal masks) are returned for the next layer."""
    explicit = parts.value_terms or pre_mix is not None or post_mix is not None or carried is not None \
        or keep_scores
    if not explicit:
        biases = parts.position_biases + parts.mask_biases
        hiding = parts.hiding + len(parts.mask_biases)
        inputs = ([parts.query, parts.key, parts.value]
                  + ([_sum(ctx, biases, "AttentionBias", hiding)] if biases else []))
        pattern = {"pattern": parts.pattern} if parts.pattern is not None else {}
        return ctx.op("attention", *inputs, scale=float(parts.scale), causal=parts.causal,
                      softcap=float(parts.softcap), label="Attention", **pattern), None
    scores = ctx.op("attention_scores", parts.query, parts.key, scale=float(parts.scale),
                    softcap=float(parts.softcap), label="Scores")
    if carried is not None:
        scores = ctx.op("add", scores, carried, label="ResidualScores")
    if pre_mix is not None:
        scores = ctx.op("einsum", scores, pre_mix, equation="bhst,hg->bgst", label="TalkingHeadsPre")
    if parts.position_biases:
        scores = ctx.op("add", scores, _sum(ctx, parts.position_biases, "PositionBias"), label="AddPositionBias")
    kept = scores if keep_scores else None
    if parts.mask_biases:
        scores = ctx.op("add", scores, _sum(ctx, parts.mask_biases, "MaskBias"), label="AddMask")
    if parts.hiding + len(parts.mask_biases) >= 2:
        scores = ctx.op("mask_floor", scores, label="MaskFloor")
    if parts.causal:
        scores = ctx.op("causal_mask", scores, label="Causal")
    if parts.pattern is not None:
        scores = ctx.op("pattern_mask", scores, pattern=parts.pattern, label="SparsePattern")
    probs = ctx.op("softmax", scores, axis=-1, label="Softmax")
    if post_mix is not None:
        probs = ctx.op("einsum", probs, post_mix, equation="bhst,hg->bgst", label="TalkingHeadsPost")
    context = ctx.op("attention_context", probs, parts.value, label="Context")
    for term in parts.value_terms:
        context = ctx.op("add", context, term(probs), label="ValueTerm")
    return context, kept
