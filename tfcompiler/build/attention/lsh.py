"""Attention kind `lsh`: Reformer's locality-sensitive-hashing attention (Kitaev et al. 2020).
Queries and keys share one projection (keys are the unit-normalised queries); each of `rounds`
hashing rounds buckets positions by random rotations, sorts them by bucket, and attends within
chunks of `chunk` sorted positions and the chunk before (the first chunk has none), same-bucket
keys only, as the paper describes (Hugging Face's and lucidrains' code also let a chunk attend the
other buckets in it, and roll its look-back across hashing rounds); rounds are combined by their
log-sum-exps (see tfcompiler.ir.ops.lsh).
Sorting stays inside the graph (TopK over the whole length), so any length works. The rotations
are drawn when the spec is compiled, from `seed` and the layer's path, and stored as a constant.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...spec.kinds import ATTENTION
from ...spec.schema import option
from .linearised import no_score_positions
from .multi_head import key_padding, output_projection


@dataclass(frozen=True, kw_only=True)
class LshOptions:
    """Reformer LSH attention (Kitaev et al. 2020)."""

    self_only: ClassVar[bool] = True  # attends its own sequence only: no cross-attention

    buckets: int = option(32, doc="Hash buckets per round (even).", minimum=2)
    rounds: int = option(2, doc="Hashing rounds (n_hashes).", minimum=1)
    chunk: int = option(64, doc="Sorted positions per chunk.", minimum=1)
    seed: int = option(0, doc="Seed of the random rotations.", minimum=0)

    def problems(self, spec):
        if self.buckets % 2:
            yield f"buckets must be even, got {self.buckets}"
        if spec.model.kv != spec.model.heads:
            yield "lsh attention shares queries and keys: kv_heads must equal heads"
        yield from no_score_positions("lsh", spec)


def build_lsh(ctx, options: LshOptions, spec, site):
    m = spec.model
    shared = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query_key", m.bias), m.heads, m.dh)
    value = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "value", m.bias), m.heads, m.dh)
    rng = ctx.rng(options.seed)
    rotations = ctx.constant(rng.standard_normal((options.rounds, m.dh, options.buckets // 2)))
    inputs = [shared, value, rotations] + key_padding(ctx, site)
    context = ctx.op("lsh_attention", *inputs, chunk=options.chunk, causal=site.causal,
                     scale=float(m.dh ** -0.5), label="LSHAttention")
    return output_projection(ctx, spec, context)


ATTENTION.register("lsh", LshOptions, build_lsh)
