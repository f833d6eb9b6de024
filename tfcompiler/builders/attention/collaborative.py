"""Attention kind `collaborative`: collaborative multi-head attention (Cordonnier, Loukas & Jaggi
2020). The heads share one query and one key projection of width D̃ and differ by a learned mixing
vector m_h:

  head_h = softmax((X W̃_Q ⊙ m_h)(X W̃_K)ᵀ / √D̃) X W_V^h

Queries are the shared projection times each head's mixing vector; the shared keys are broadcast
to every head (a Mul by ones: ONNX Attention wants as many key heads as value heads). Values,
output, positions and every multi_head option work as in `multi_head`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import with_width
from .multi_head import MultiHeadOptions, attend


@dataclass(frozen=True, kw_only=True)
class CollaborativeOptions(MultiHeadOptions):
    """Shared query/key projections with a learned mixing vector per head (Cordonnier et al. 2020)."""

    PAPER = "Cordonnier et al. 2020"
    COMPUTES = "one query/key projection shared by the heads, a learned mixing vector per head"
    LOWERING = "as `multi_head`, the shared keys broadcast to every head"

    shared_width: int | None = option(None, doc="D̃: width of the shared query/key projection. "
                                      "Default: model.width.", minimum=1, shrink=with_width)

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if spec.model.kv != spec.model.heads:
            yield "collaborative attention has one value head per query head: kv_heads must equal heads"


def build_collaborative(ctx, options: CollaborativeOptions, spec, site):
    m = spec.model
    shared = options.shared_width or m.width
    query = ctx.op("unsqueeze", ctx.linear(site.x, shared, "query", m.bias), axes=(1,))  # (B, 1, S, D~)
    key = ctx.op("unsqueeze", ctx.linear(site.memory, shared, "key", m.bias), axes=(1,))
    mixing = ctx.op("reshape", ctx.param("mixing", (m.heads, shared), "ones"), shape=(1, m.heads, 1, shared))
    query = ctx.op("mul", query, mixing, label="MixHeads")
    key = ctx.op("mul", key, ctx.constant(np.ones((1, m.heads, 1, 1), np.float32)), label="ShareKeys")
    value = ctx.split_heads(ctx.linear(site.memory, m.heads * m.dh, "value", m.bias), m.heads, m.dh)
    return attend(ctx, options, spec, site, query, key, value)


ATTENTION.register("collaborative", CollaborativeOptions, build_collaborative, examples={
    "collaborative_heads": """
topology: decoder
positional: rope
block: {attention: {kind: collaborative, shared_width: 12}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
