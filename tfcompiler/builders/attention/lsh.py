"""Attention kind `lsh`: Reformer's locality-sensitive-hashing attention (Kitaev et al. 2020).
Queries and keys share one projection (keys are the normalised queries); each of `rounds` hashing
rounds buckets positions by random rotations, sorts them by bucket, and attends within chunks of
`chunk` sorted positions and the chunk before. By default as the paper describes: the first chunk
of a round has none before it, same-bucket keys only, scores scaled by 1/√Dh. The authors' trax
code and Hugging Face's port (`same_bucket: false, look_back: rolled, scale: 1, key_epsilon: 1e-6`,
per-head rotations from the weights: what `tfc import-hf` writes for a Reformer) let a chunk attend
every key in it and roll its look-back across hashing rounds; they also take `chunks_before` and
`chunks_after` (look-ahead) neighbouring chunks, rolled likewise. lucidrains' reformer-pytorch rolls
the look-back too and hashes padded positions like the others (`padding: hashed`), where ours share a
bucket of their own. Rounds are combined by their
log-sum-exps (see tfcompiler.ir.ops.lsh).
Sorting stays inside the graph (TopK over the whole length), so any length works. The rotations
are drawn when the spec is compiled, from `seed` and the layer's path, and stored as a constant
shared by the heads; with `rotations: weights` they are a (heads, Dh, rounds, buckets/2) weight.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.ops.lsh import LOOK_BACK
from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .linearised import no_score_positions
from .multi_head import key_padding, output_projection


@dataclass(frozen=True, kw_only=True)
class LshOptions(AttentionKind):
    """Reformer LSH attention (Kitaev et al. 2020)."""

    PAPER = "Reformer (Kitaev et al. 2020)"
    COMPUTES = ("shared QK, `rounds` hashings into `buckets` by frozen random rotations (padding in one more bucket, "
                "last), chunks of sorted positions and the chunk before; the paper's same-bucket keys within a round, "
                "or trax's and Hugging Face's every key with the look-back rolled across rounds (`same_bucket`, "
                "`look_back`, `scale`, `key_epsilon`, per-head `rotations: weights`)")
    LOWERING = "`lsh_attention`: TopK sort, GatherElements, ScatterElements"

    self_only: ClassVar[bool] = True  # attends its own sequence only: no cross-attention
    no_cache_because: ClassVar[str] = ("its hash buckets are sorted and chunked over the whole sequence, so a new "
                                       "token changes earlier tokens' chunks")

    buckets: int = option(32, doc="Hash buckets per round (even).", minimum=2, shrink=cap(4))
    rounds: int = option(2, doc="Hashing rounds (n_hashes).", minimum=1)
    chunk: int = option(64, doc="Sorted positions per chunk.", minimum=1, shrink=cap(4))
    seed: int = option(0, doc="Seed of the random rotations.", minimum=0)
    rotations: str = option("seeded", doc="seeded: drawn from `seed` when the spec compiles, shared by the heads; "
                            "weights: the weight `attention.rotations` of shape (heads, head_width, rounds, "
                            "buckets/2), one set per head (Hugging Face's, drawn from its hash_seed).",
                            choices=("seeded", "weights"))
    same_bucket: bool = option(True, doc="Only keys of the query's own bucket count (the paper); false: every "
                               "key of the chunk and the one before (trax, Hugging Face).")
    look_back: str = option("round", doc="round: a chunk sees the chunk before it in its own hashing round, the "
                            "first chunk none (the paper); rolled: the rounds are one sorted sequence and the "
                            "first chunk of a round sees the last chunk of the round before, round 0 the last "
                            "round's (trax, Hugging Face).", choices=LOOK_BACK)
    scale: float | None = option(None, doc="Score scale. Default 1/√head_width (trax and Hugging Face: 1).",
                                 minimum=0.0)
    key_epsilon: float = option(0.0, doc="ε of the key normalisation k = x / √(|x|² + head_width·ε) (trax and "
                                "Hugging Face: 1e-6).", minimum=0.0)
    padding: str = option("own_bucket", doc="own_bucket: padded positions share one more bucket, after the others, "
                          "so they never take a real position's place in a chunk; hashed: they are hashed and sorted "
                          "like real positions and only hidden as keys (lucidrains' reformer-pytorch).",
                          choices=("own_bucket", "hashed"))
    chunks_before: int = option(1, doc="Chunks before its own a chunk sees (Hugging Face's lsh_num_chunks_before); "
                                "other than 1 with look_back: rolled.", minimum=0)
    chunks_after: int = option(0, doc="Chunks after its own a chunk sees, the look-ahead (Hugging Face's "
                               "lsh_num_chunks_after; in a decoder the causal mask still hides later positions); other "
                               "than 0 with look_back: rolled.", minimum=0)
    length_multiple: int | None = option(None, doc="Pad the sequence to a multiple of this many positions (a "
                                         "multiple of chunk) before it is chunked: Hugging Face pads a Reformer's "
                                         "input to the least common multiple of its layers' chunk lengths, which "
                                         "adds chunks of padding that the rolled look-back sees. Default: chunk.",
                                         minimum=1)

    def problems(self, spec, where):
        if self.buckets % 2:
            yield f"buckets must be even, got {self.buckets}"
        if spec.model.kv != spec.model.heads:
            yield "lsh attention shares queries and keys: kv_heads must equal heads"
        yield from no_score_positions("lsh", spec)
        if self.length_multiple is not None and self.length_multiple % self.chunk:
            yield f"length_multiple {self.length_multiple} must be a multiple of chunk {self.chunk}"
        if (self.chunks_before, self.chunks_after) != (1, 0) and self.look_back != "rolled":
            yield (f"chunks_before {self.chunks_before} / chunks_after {self.chunks_after}: chunks other than the one "
                   "before need look_back: rolled (the rounds' chunks as one sequence, as Hugging Face takes them)")


def build_lsh(ctx, options: LshOptions, spec, site):
    m = spec.model
    shared = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query_key", m.bias), m.heads, m.dh)
    value = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "value", m.bias), m.heads, m.dh)
    if options.rotations == "weights":
        rotations = ctx.param("rotations", (m.heads, m.dh, options.rounds, options.buckets // 2), "embedding")
    else:  # one set for every head
        drawn = ctx.rng(options.seed).standard_normal((options.rounds, m.dh, options.buckets // 2))
        rotations = ctx.constant(drawn.transpose(1, 0, 2)[None])
    inputs = [shared, value, rotations] + key_padding(ctx, site)
    scale = options.scale if options.scale is not None else m.dh ** -0.5
    extra = ({"before": options.chunks_before, "after": options.chunks_after}
             if (options.chunks_before, options.chunks_after) != (1, 0) else {})  # the defaults: no attributes
    if options.length_multiple is not None:
        extra["multiple"] = options.length_multiple
    if options.padding == "hashed":
        extra["hash_padding"] = True
    context = ctx.op("lsh_attention", *inputs, chunk=options.chunk, causal=site.causal, scale=float(scale),
                     same_bucket=options.same_bucket, look_back=options.look_back,
                     key_epsilon=float(options.key_epsilon), label="LSHAttention", **extra)
    return output_projection(ctx, spec, context)


ATTENTION.register("lsh", LshOptions, build_lsh, examples={
    "reformer_lsh_encoder": """
topology: encoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 6, seed: 1}}
encoder: {layers: 2}
""",
    "reformer_trax_lsh_decoder": """
topology: decoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 3, same_bucket: false, look_back: rolled, scale: 1.0,
                    key_epsilon: 1e-6, rotations: weights}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "reformer_lsh_look_ahead_encoder": """
topology: encoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 3, same_bucket: false, look_back: rolled, scale: 1.0,
                    key_epsilon: 1e-6, chunks_before: 1, chunks_after: 1}}
encoder: {layers: 2}
""",
    "reformer_lsh_padded_to_lcm_encoder": """
topology: encoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 2, same_bucket: false, look_back: rolled,
                    length_multiple: 8}}
encoder: {layers: 2}
""",
    "reformer_lsh_look_ahead_decoder": """
topology: decoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 3, seed: 2, same_bucket: false, look_back: rolled,
                    chunks_before: 0, chunks_after: 2}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "reformer_trax_lsh_encoder": """
topology: encoder
block: {attention: {kind: lsh, buckets: 4, rounds: 3, chunk: 4, same_bucket: false, look_back: rolled}}
encoder: {layers: 2}
""",
    "reformer_pytorch_lsh_encoder": """
topology: encoder
block: {attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 4, same_bucket: false, look_back: rolled,
                    padding: hashed}}
encoder: {layers: 2}
""",
    "reformer_lsh_causal_decoder": """
topology: decoder
block: {attention: {kind: lsh, buckets: 2, rounds: 3, chunk: 4}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
