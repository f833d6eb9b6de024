"""Attention kind `routing`: the Routing Transformer's content-based sparse attention (Roy et al.
2021). Queries and keys are routed by their unit vectors to `clusters` learned centroids (weights
`centroids`, one set per head: what the paper's k-means learns in training); each centroid takes
the ⌈S/C⌉ nearest queries and keys and attends within them, so scores cost S²/C. Top-k routing
stays inside the graph (TopK over the length), so any length works. Causal in decoders. As in the
paper, `local_heads` of the heads can attend a local window instead (`window` keys back, and ahead
in encoders; the sparsity pass lowers them to banded blocks), the rest route.

`positional: rope` rotates every head's queries and keys (lucidrains' routing-transformer rotates the
routing heads', interleaved). Its other conventions are options, each off by default: `rotate_values`, the
routing heads' values rotated too; `shared_qk`, keys that are the unit queries (no key projection);
`padding_routing: content`, padding routed by its content like any token; and `commitment_loss`, the
k-means commitment term the package returns beside its output (in eval too, where its centroids stay
fixed), as the model's output `routing_commitment_loss`, summed over the layers as the package sums it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Window
from ...language.kinds import ATTENTION, POSITIONS, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap, with_heads
from ..positional.rotary import rope
from .multi_head import MultiHeadOptions, attention_context, key_padding, output_projection, project


@dataclass(frozen=True, kw_only=True)
class RoutingOptions(AttentionKind):
    """Routing Transformer attention (Roy et al. 2021)."""

    PAPER = "Routing Transformer (Roy et al. 2021)"
    COMPUTES = ("queries and keys routed to learned `centroids`, each taking ⌈S/C⌉ (padding ranked after every real "
                "position, or routed by content); `local_heads` attend a window instead; optional shared keys and "
                "the k-means commitment term as an output")
    LOWERING = ("`routing_attention`: TopK, GatherElements, ScatterElements(add); `routing_commitment`: ArgMax, "
                "one-hot MatMul, ReduceMean")

    no_cache_because: ClassVar[str] = ("each centroid takes the ⌈S/C⌉ nearest of the whole sequence's queries and "
                                       "keys, so a new token changes which tokens earlier ones attend")

    clusters: int = option(4, doc="C: centroids; each takes ⌈S/C⌉ queries and keys.", minimum=1, shrink=cap(4))
    local_heads: int = option(0, doc="Heads that attend a local window instead of routing (the first ones).",
                              minimum=0, shrink=with_heads)
    window: int = option(256, doc="Keys back (and ahead, in encoders) the local heads see.", minimum=1, shrink=cap(2))
    shared_qk: bool = option(False, doc="Keys are the queries, L2-normalised (no key projection); routed once, a "
                             "query sees its own key only when it sees nothing else (routing-transformer's "
                             "`shared_qk`).")
    rotate_values: bool = option(False, doc="With `positional: rope`, rotate the routing heads' values as well as "
                                 "their queries and keys, as routing-transformer does.")
    padding_routing: str = option("last", doc="last: padding ranks after every real position, so it never takes "
                                  "a real token's place. content: padding is routed like any position, and in an "
                                  "encoder a query a centroid shows no real key takes the mean of its values "
                                  "(routing-transformer).",
                                  choices=("last", "content"))
    commitment_loss: float | None = option(None, doc="Also output the k-means commitment term, this factor times "
                                           "the mean squared distance of the unit queries and keys to their nearest "
                                           "centroid, every position counted (routing-transformer's aux loss, "
                                           "`commitment_factor` 1e-4 there), as `routing_commitment_loss`: the sum "
                                           "over the model's layers that set it.", minimum=0.0)

    def problems(self, spec, where):
        scheme = POSITIONS.builder(spec.positional)
        if scheme.attend is not None:  # a rotation acts on queries and keys; a score bias has no scores to act on
            yield (f"routing attention gathers its scores per centroid: positional '{type(spec.positional).KIND}' "
                   "has nothing to act on; use rope or an embedding scheme (learned, sinusoidal, ...)")
        if self.rotate_values and scheme.rotate is None:
            yield "rotate_values rotates by the rope positional: set positional: {kind: rope}"
        if self.local_heads >= spec.model.heads:
            yield f"local_heads must leave routing heads: {self.local_heads} of {spec.model.heads}"
        if self.local_heads and spec.model.kv != spec.model.heads:
            yield "local_heads splits the heads: kv_heads must equal heads"
        if self.shared_qk and spec.model.kv != spec.model.heads:
            yield "shared_qk makes the keys of the queries: kv_heads must equal heads"
        if self.shared_qk and self.local_heads:
            yield "shared_qk drops the key projection, which the local heads need: set local_heads: 0"


def build_routing(ctx, options: RoutingOptions, spec, site):
    m = spec.model
    heads = projections(ctx, options, spec, site)
    local = options.local_heads
    if local:  # heads [0, local) attend a window, the others route

        def take(x, first, last):
            return ctx.op("gather", x, ctx.constant(list(range(first, last)), dtype="int64"), axis=1)

        window = Window(back=options.window, ahead=0 if site.causal else options.window)
        local_context = attention_context(ctx, MultiHeadOptions(), spec, site,
                                          *(take(x, 0, local) for x in heads), pattern=window)
        heads = [take(x, local, m.heads) for x in heads]
    query, key, value = rotated(ctx, options, spec, site, *heads)
    centroids = ctx.param("centroids", (m.heads - local, options.clusters, m.dh), "embedding")
    if options.commitment_loss is not None:
        add_commitment_loss(ctx, options, query, None if options.shared_qk else key, centroids)
    context = ctx.op("routing_attention", query, key, value, centroids, *key_padding(ctx, site), causal=site.causal,
                     scale=float(m.dh ** -0.5), label="RoutingAttention",
                     **({"shared_qk": True} if options.shared_qk else {}),
                     **({"padding_routing": "content"} if options.padding_routing == "content" else {}))
    if local:
        context = ctx.op("concat", local_context, context, axis=1)
    return output_projection(ctx, spec, context)


def projections(ctx, options: RoutingOptions, spec, site):
    """Queries, keys and values (B, H, S, Dh); with shared_qk the keys are the queries (the op normalises them)."""
    if not options.shared_qk:
        return project(ctx, spec, site)
    m = spec.model
    query = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query", m.bias), m.heads, m.dh)
    value = ctx.split_heads(ctx.linear(site.memory, m.kv * m.dh, "value", m.bias), m.kv, m.dh)
    return query, query, value


def rotated(ctx, options: RoutingOptions, spec, site, query, key, value):
    """The routing heads under a rope positional: queries and keys rotated (values too with rotate_values)."""
    if site.positional is None or POSITIONS.builder(site.positional).rotate is None:
        return query, key, value
    query_rotated = rope(ctx, site.positional, spec, query, site.positions, "RotaryQuery")
    key = query_rotated if options.shared_qk else rope(ctx, site.positional, spec, key, site.positions, "RotaryKey")
    if options.rotate_values:
        value = rope(ctx, site.positional, spec, value, site.positions, "RotaryValue")
    return query_rotated, key, value


def add_commitment_loss(ctx, options: RoutingOptions, query, key, centroids) -> None:
    """Add this layer's commitment term to the model's output `routing_commitment_loss`."""
    loss = ctx.op("routing_commitment", query, *([key] if key is not None else []), centroids,
                  commitment=float(options.commitment_loss), label="RoutingCommitment")
    earlier = ctx.graph.outputs.get("routing_commitment_loss")
    ctx.graph.outputs["routing_commitment_loss"] = loss if earlier is None else ctx.op("add", earlier, loss)


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
    "routing_rotary_values": """
topology: decoder
positional: {kind: rope, layout: interleaved}
block: {attention: {kind: routing, clusters: 2, local_heads: 1, window: 3, rotate_values: true}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "routing_shared_qk": """
topology: decoder
block: {attention: {kind: routing, clusters: 2, shared_qk: true}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "routing_commitment_loss": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: routing, clusters: 3, commitment_loss: 1.0}}
encoder: {layers: 2}
""",
    "routing_padding_by_content": """
topology: encoder
block: {attention: {kind: routing, clusters: 3, padding_routing: content}}
encoder: {layers: 2}
""",
    "routing_causal_padding_by_content": """
topology: decoder
block: {attention: {kind: routing, clusters: 3, padding_routing: content}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
