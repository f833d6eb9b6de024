"""Attention kind `multi_head`: scaled dot-product attention over H query heads and Hkv key/value
heads (Hkv = H: multi-head, Vaswani et al. 2017; Hkv = 1: multi-query, Shazeer 2019; between:
grouped-query, Ainslie et al. 2023).

Built as projections + the canonical IR ``attention`` op, so lowering picks the kernel per target.
The padding mask becomes an additive bias; causality is the op's ``causal`` attribute; soft-capping
(Gemma 2) is its ``softcap`` attribute, applied to the scaled scores before any bias or mask.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...spec.kinds import ATTENTION, POSITIONS
from ...spec.model import Norm
from ...spec.schema import option
from ..norm import build_norm


@dataclass(frozen=True)
class MultiHeadOptions:
    """Scaled dot-product attention over query heads and key/value heads (multi-head, multi-query, grouped-query: see `model.kv_heads`)."""

    scale: float | None = option(None, doc="Score scale. Default 1/√head_width (T5 uses 1).",
                                 minimum=0.0)
    qk_norm: str | None = option(None, doc="Normalise each head's queries and keys over the head "
                                 "width before positions are applied (OLMo 2, Qwen 3; Dehghani et al. "
                                 "2023), with a learned scale.", choices=("rms_norm", "layer_norm"))
    qk_norm_epsilon: float = option(1e-6, doc="Epsilon of the query/key norm.", minimum=0.0)
    softcap: float | None = option(None, doc="Soft-cap the scaled scores: c·tanh(s/c) (Gemma 2).",
                                   minimum=0.0)


def build_multi_head(ctx, options: MultiHeadOptions, spec, x, memory, mask, causal: bool, positions=None):
    """x (B,S,D) attends memory (B,T,D) (memory is x for self-attention); mask (B,T) or None;
    positions (1,S) when the positional scheme acts on queries and keys (self-attention only)."""
    m = spec.model
    query_BHSDh = ctx.split_heads(ctx.linear(x, m.heads * m.dh, "query", m.bias), m.heads, m.dh)
    key_BHkvTDh = ctx.split_heads(ctx.linear(memory, m.kv * m.dh, "key", m.bias), m.kv, m.dh)
    value_BHkvTDh = ctx.split_heads(ctx.linear(memory, m.kv * m.dh, "value", m.bias), m.kv, m.dh)
    if options.qk_norm:
        norm = Norm(kind=options.qk_norm, epsilon=options.qk_norm_epsilon)
        query_BHSDh = build_norm(ctx, query_BHSDh, norm, "query_norm", bias=False)
        key_BHkvTDh = build_norm(ctx, key_BHkvTDh, norm, "key_norm", bias=False)
    scheme = POSITIONS.builder(spec.positional)
    biases = [ctx.op("padding_bias", mask)] if mask is not None else []
    if positions is not None and scheme.attend is not None:
        query_BHSDh, key_BHkvTDh, position_bias = scheme.attend(ctx, spec.positional, spec, query_BHSDh,
                                                                key_BHkvTDh, positions)
        biases += [position_bias] if position_bias is not None else []
    scale = options.scale if options.scale is not None else m.dh ** -0.5
    inputs = [query_BHSDh, key_BHkvTDh, value_BHkvTDh]
    if biases:
        inputs.append(biases[0] if len(biases) == 1 else ctx.op("add", *biases, label="AttentionBias"))
    context_BHSDh = ctx.op("attention", *inputs, scale=float(scale), causal=causal,
                           softcap=float(options.softcap or 0.0), label="Attention")
    return ctx.linear(ctx.merge_heads(context_BHSDh), m.width, "output", m.bias)


ATTENTION.register("multi_head", MultiHeadOptions, build_multi_head)
