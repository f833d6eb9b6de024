"""Attention kind `routing`: the Routing Transformer's content-based sparse attention (Roy et al.
2021). Queries and keys are routed by their unit vectors to `clusters` learned centroids (weights
`centroids`, one set per head: what the paper's k-means learns in training); each centroid takes
the ⌈S/C⌉ nearest queries and keys and attends within them, so scores cost S²/C. Top-k routing
stays inside the graph (TopK over the length), so any length works. Causal in decoders. As in the
paper, `local_heads` of the heads can attend a local window instead (`window` keys back, and ahead
in encoders; the sparsity pass lowers them to banded blocks), the rest route.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Window
from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap, with_heads
from .linearised import no_score_positions
from .multi_head import MultiHeadOptions, attention_context, key_padding, output_projection, project


@dataclass(frozen=True, kw_only=True)
class RoutingOptions(AttentionKind):
    """Routing Transformer attention (Roy et al. 2021)."""

    PAPER = "Routing Transformer (Roy et al. 2021)"
    COMPUTES = ("queries and keys routed to learned `centroids`, each taking ⌈S/C⌉ (padding ranked after every real "
                "position); `local_heads` attend a window instead")
    LOWERING = "`routing_attention`: TopK, GatherElements, ScatterElements(add)"

    no_cache_because: ClassVar[str] = ("each centroid takes the ⌈S/C⌉ nearest of the whole sequence's queries and "
                                       "keys, so a new token changes which tokens earlier ones attend")

    clusters: int = option(4, doc="C: centroids; each takes ⌈S/C⌉ queries and keys.", minimum=1, shrink=cap(4))
    local_heads: int = option(0, doc="Heads that attend a local window instead of routing (the first ones).",
                              minimum=0, shrink=with_heads)
    window: int = option(256, doc="Keys back (and ahead, in encoders) the local heads see.", minimum=1, shrink=cap(2))

    def problems(self, spec, where):
        yield from no_score_positions("routing", spec)
        if self.local_heads >= spec.model.heads:
            yield f"local_heads must leave routing heads: {self.local_heads} of {spec.model.heads}"
        if self.local_heads and spec.model.kv != spec.model.heads:
            yield "local_heads splits the heads: kv_heads must equal heads"


def build_routing(ctx, options: RoutingOptions, spec, site):
    m = spec.model
    heads = project(ctx, spec, site)
    local = options.local_heads
    if local:  # heads [0, local) attend a window, the others route

        def take(x, first, last):
            return ctx.op("gather", x, ctx.constant(list(range(first, last)), dtype="int64"), axis=1)

        window = Window(back=options.window, ahead=0 if site.causal else options.window)
        local_context = attention_context(ctx, MultiHeadOptions(), spec, site,
                                          *(take(x, 0, local) for x in heads), pattern=window)
        heads = [take(x, local, m.heads) for x in heads]
    centroids = ctx.param("centroids", (m.heads - local, options.clusters, m.dh), "embedding")
    context = ctx.op("routing_attention", *heads, centroids, *key_padding(ctx, site), causal=site.causal,
                     scale=float(m.dh ** -0.5), label="RoutingAttention")
    if local:
        context = ctx.op("concat", local_context, context, axis=1)
    return output_projection(ctx, spec, context)


ATTENTION.register("routing", RoutingOptions, build_routing, examples={
    "routing_encoder": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: routing, clusters: 3}}
encoder: {layers: 2}
""",
    "routing_causal_decoder": """
topology: decoder
block: {attention: {kind: routing, clusters: 2, local_heads: 2, window: 3}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
