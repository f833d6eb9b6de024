"""Attention kind `star`: the Star-Transformer's ring-and-relay attention (Guo et al. 2019).

Each token (satellite) attends five keys: its ring neighbours, itself, its own embedding e_i (the
first star layer's input) and a relay node s, O(n) (tfcompiler.ir.ops.star). The relay starts as
the mean of the real embeddings and, after every layer's satellite update, attends itself and the
satellites' new attention outputs with its own projections (`relay.*`):
s <- LayerNorm(ReLU(MultiAtt(s, [s; H]))), as in the paper, carried from layer to layer (a layer is
one of the paper's cycles). `update: block` sends the satellites' attention output through the
block's residual, norm and FFN; `update: paper` makes it the paper's h = LayerNorm(ReLU(MultiAtt(·)))
(`satellite_norm`), with blocks of `placement: none` and no FFN, so the layer is exactly the paper's
cycle. Bidirectional.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION, AttentionKind
from ...language.model import Norm
from ...language.schema import option
from ..norm import build_norm
from .lowrank import bidirectional_only
from .multi_head import MultiHeadOptions, build_multi_head, key_padding, with_leading_real
from .parts import Site


@dataclass(frozen=True, kw_only=True)
class StarOptions(AttentionKind):
    """Star-Transformer attention: ring neighbours, the token's embedding and a relay node."""

    PAPER = "Star-Transformer (Guo et al. 2019)"
    COMPUTES = ("ring neighbours, the token's embedding and a relay node that attends every token between layers; "
                "`update: paper` makes the satellites' update the paper's LayerNorm(ReLU(·)) on bare blocks")
    LOWERING = "`star_attention`: five keys per token, O(n)"

    self_only: ClassVar[bool] = True  # attends its own sequence only: no cross-attention
    update: str = option("block", doc="The satellites' update: block (the attention output goes through the "
                         "block's residual, norm and FFN) or paper (LayerNorm(ReLU(·)) alone, with placement: none "
                         "and ffn: {enabled: false}).", choices=("block", "paper"))

    def problems(self, spec, where):
        yield from bidirectional_only("star", spec)
        if self.update == "paper" and any(block.attention is self and (block.placement != "none" or block.ffn.enabled)
                                          for _, _, blocks in spec.stacks() for block in blocks):
            yield "update: paper is the whole satellite update: use it with placement: none and ffn: {enabled: false}"


def initial_relay(ctx, embeddings, mask):
    """(B, 1, D): the mean of the real positions' embeddings."""
    if mask is None:
        return ctx.op("reduce_mean", embeddings, axes=(1,), keepdims=True)
    keep = ctx.op("cast", ctx.op("unsqueeze", mask, axes=(2,)), dtype="float32")  # (B, S, 1)
    total = ctx.op("reduce_sum", ctx.op("mul", embeddings, keep), axes=(1,), keepdims=True)
    return ctx.op("div", total, ctx.op("reduce_sum", keep, axes=(1,), keepdims=True))


def build_star(ctx, options: StarOptions, spec, site):
    m = spec.model
    embeddings = site.state.setdefault("star_embeddings", site.x)
    relay = site.state.get("star_relay")
    if relay is None:
        relay = initial_relay(ctx, embeddings, site.mask)

    def heads(x, name):
        return ctx.split_heads(ctx.linear(x, m.heads * m.dh, name, m.bias), m.heads, m.dh)

    q, k, v = heads(site.x, "query"), heads(site.x, "key"), heads(site.x, "value")
    inputs = [q, k, v, heads(embeddings, "key"), heads(embeddings, "value"), heads(relay, "key"),
              heads(relay, "value")] + key_padding(ctx, site)
    satellites = ctx.linear(ctx.merge_heads(ctx.op("star_attention", *inputs, scale=float(m.dh ** -0.5),
                                                   label="StarAttention")), m.width, "output", m.bias)
    if options.update == "paper":
        satellites = build_norm(ctx, ctx.op("relu", satellites), Norm(), "satellite_norm")
    with ctx.at("relay"):
        keys = ctx.op("concat", relay, satellites, axis=1)  # [s; H]
        mask = with_leading_real(ctx, site.mask) if site.mask is not None else None  # the relay is real
        updated = build_multi_head(ctx, MultiHeadOptions(), spec, Site(relay, keys, mask, False))
    site.state["star_relay"] = build_norm(ctx, ctx.op("relu", updated), Norm(), "relay_norm")
    return satellites


ATTENTION.register("star", StarOptions, build_star, examples={
    "star_transformer_paper": """
topology: encoder
block: {placement: none, attention: {kind: star, update: paper}, ffn: {enabled: false}}
encoder: {layers: 2}
""",
    "star_transformer": """
topology: encoder
block: {attention: {kind: star}}
encoder: {layers: 3}
""",
})
