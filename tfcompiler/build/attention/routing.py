"""Attention kind `routing`: the Routing Transformer's content-based sparse attention (Roy et al.
2021). Queries and keys are routed by their unit vectors to `clusters` learned centroids (weights
`centroids`, one set per head: what the paper's k-means learns in training); each centroid takes
the ⌈S/C⌉ nearest queries and keys and attends within them, so scores cost S²/C. Top-k routing
stays inside the graph (TopK over the length), so any length works. Causal in decoders. The
paper's mix with local-attention heads is a per-layer choice (`overrides`) in the spec.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...spec.kinds import ATTENTION
from ...spec.schema import option
from .linearised import no_score_positions
from .multi_head import key_padding, output_projection, project


@dataclass(frozen=True, kw_only=True)
class RoutingOptions:
    """Routing Transformer attention (Roy et al. 2021)."""

    clusters: int = option(4, doc="C: centroids; each takes ⌈S/C⌉ queries and keys.", minimum=1)

    def problems(self, spec):
        yield from no_score_positions("routing", spec)


def build_routing(ctx, options: RoutingOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    centroids = ctx.param("centroids", (m.heads, options.clusters, m.dh), "embedding")
    inputs = [query, key, value, centroids] + key_padding(ctx, site)
    context = ctx.op("routing_attention", *inputs, causal=site.causal, scale=float(m.dh ** -0.5),
                     label="RoutingAttention")
    return output_projection(ctx, spec, context)


ATTENTION.register("routing", RoutingOptions, build_routing)
