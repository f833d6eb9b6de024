"""Attention kind `lsh`: Reformer's LSH attention (Kitaev et al. 2020), written per query over sets.
Queries and keys share one projection. In each round, position i's bucket is argmax([x_i R; -x_i R])
of its shared query/key vector (padding: one more bucket after the others, or hashed as the others
are with `padding: hashed`, lucidrains'); positions are ranked by
(bucket, position) and cut into chunks; i attends the positions of its chunk and the chunk before:
within its round (the paper; the first chunk has none), or, with look_back rolled, in the rounds'
ranks laid end to end (round r's ranks after round r-1's, each round padded to whole chunks, or to
a whole length_multiple), the chunk before the first being the very last one (with chunks_before /
chunks_after, the chunks c + k mod N of those N for k from -chunks_before to chunks_after, a shift of
N or more being none and a chunk reached twice seen twice); with same_bucket only keys of its bucket;
causal ones only in decoders; itself at score -1e5; keys k = x / √(|x|² + d·ε); rounds weighted by
exp(z^r - logsumexp_r z^r).

The rotations R (H, d, rounds, n/2) are the model's `rotations` weight when the spec stores them
there (rotations: weights); else they are drawn at compile time, and re-derived here from `seed` and
the layer path as tfcompiler documents: ``numpy.random.default_rng([seed, crc32(layer)])
.standard_normal((rounds, d, n/2))``, shared by the heads."""
from __future__ import annotations

import math
import zlib

import numpy as np

from ..registry import ATTENTION
from .multi_head import MultiHead


def lsh_attention(qk, v, key_bias, options, layer: str, causal: bool, rotations=None):
    b, h, s, d = qk.shape
    if rotations is None:
        rng = np.random.default_rng([options.seed, zlib.crc32(layer.encode())])
        rotations = np.broadcast_to(rng.standard_normal((options.rounds, d, options.buckets // 2)).transpose(1, 0, 2),
                                    (h, d, options.rounds, options.buckets // 2))
    keys = qk / np.sqrt((qk ** 2).sum(-1, keepdims=True) + d * options.key_epsilon)
    scale = options.scale if options.scale is not None else 1 / math.sqrt(d)
    multiple = getattr(options, "length_multiple", None) or options.chunk  # padded to a whole multiple
    chunks = -(-s // multiple) * multiple // options.chunk  # per round
    rounds = range(options.rounds)
    out = np.zeros(qk.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            bucket, chunk_of = {}, {}  # (round, position) -> its bucket, its chunk among all rounds' chunks
            for r in rounds:
                rotated = qk[bi, hi] @ rotations[hi, :, r]
                ids = np.argmax(np.concatenate([rotated, -rotated], -1), -1)
                if key_bias is not None and options.padding == "own_bucket":
                    ids = np.where(key_bias[bi] != 0, options.buckets, ids)
                for rank, p in enumerate(sorted(range(s), key=lambda p: (ids[p], p))):
                    bucket[r, p], chunk_of[r, p] = ids[p], r * chunks + rank // options.chunk
            results, sums = [], []
            for r in rounds:
                o, z = np.zeros((s, v.shape[-1])), np.zeros(s)
                for i in range(s):
                    c = chunk_of[r, i]
                    if options.look_back == "rolled":
                        total = options.rounds * chunks
                        near = [(c + k) % total if abs(k) < total else c for k in range(
                            -getattr(options, "chunks_before", 1), getattr(options, "chunks_after", 0) + 1)]
                        among = rounds
                    else:
                        near, among = [c - 1, c], [r]
                    seen = [j for g in near for r2 in among for j in range(s) if chunk_of[r2, j] == g
                            and (not options.same_bucket or bucket[r2, j] == bucket[r, i]) and (not causal or j <= i)]
                    scores = np.array([-1e5 if j == i else qk[bi, hi, i] @ keys[bi, hi, j] * scale
                                       + (0.0 if key_bias is None else key_bias[bi, j]) for j in seen])
                    z[i] = scores.max() + np.log(np.exp(scores - scores.max()).sum())
                    o[i] = np.exp(scores - z[i]) @ v[bi, hi, seen]
                results.append(o)
                sums.append(z)
            sums = np.array(sums)
            weights = np.exp(sums - sums.max(0))
            out[bi, hi] = (np.array(results) * (weights / weights.sum(0))[..., None]).sum(0)
    return out


@ATTENTION.register("lsh")
class Lsh(MultiHead):
    def project(self, ref, x, memory, site):
        qk = ref.heads(x, f"{site.name}.query_key")
        return qk, qk, ref.heads(memory, f"{site.name}.value")

    def attend(self, ref, q, k, v, site):
        return lsh_attention(q, v, site.key_bias, site.options, site.name, site.causal,
                             ref.w.get(f"{site.name}.rotations"))
