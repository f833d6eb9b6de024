"""Attention kind `clustered`: clustered attention (Vyas et al. 2020). Queries are hashed by random
hyperplanes (drawn at compile time from `seed` and the layer's path, stored as a constant) and
grouped by `iterations` steps of k-means in Hamming space into `clusters` clusters; each cluster's
mean query attends every key and its members share the result: O(S·C) instead of O(S²). The
centroids start from evenly spaced queries, so the model is deterministic (see
tfcompiler.ir.ops.clustered). Bidirectional, as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .lowrank import bidirectional_only
from .multi_head import key_padding, output_projection, project


@dataclass(frozen=True, kw_only=True)
class ClusteredOptions(AttentionKind):
    """Clustered attention (Vyas et al. 2020)."""

    PAPER = "Vyas et al. 2020"
    COMPUTES = ("queries hashed by frozen hyperplanes, Hamming k-means seeded by evenly spaced real queries, one "
                "attention per cluster")
    LOWERING = "`clustered_attention`: one-hot MatMuls, O(S·C)"

    clusters: int = option(100, doc="C: query clusters.", minimum=1, shrink=cap(4))
    bits: int = option(32, doc="Hash bits (random hyperplanes).", minimum=1)
    iterations: int = option(10, doc="Lloyd iterations of the Hamming k-means.", minimum=0)
    seed: int = option(0, doc="Seed of the hyperplanes.", minimum=0)

    def problems(self, spec, where):
        yield from bidirectional_only("clustered", spec)
        if self.clusters > spec.model.max_length:  # its centroid tables are sized by it, before any query
            yield (f"clusters ({self.clusters:,}) must be at most model.max_length ({spec.model.max_length:,}): "
                   "a cluster groups queries, and there are no more queries than positions")


def build_clustered(ctx, options: ClusteredOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    rng = ctx.rng(options.seed)
    planes = ctx.constant(rng.standard_normal((m.dh, options.bits)))
    inputs = [query, key, value, planes] + key_padding(ctx, site)
    context = ctx.op("clustered_attention", *inputs, clusters=options.clusters, iterations=options.iterations,
                     scale=float(m.dh ** -0.5), label="ClusteredAttention")
    return output_projection(ctx, spec, context)


ATTENTION.register("clustered", ClusteredOptions, build_clustered, examples={
    "clustered_encoder": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: clustered, clusters: 3, bits: 6, iterations: 3, seed: 2}}
encoder: {layers: 2}
""",
})
