"""Attention kind `clustered` (Vyas et al. 2020), per head over lists: hash bits sign(q·p) (≥ 0 → +1)
on random planes; k-means on the real queries' hashes with Hamming distance, centroids starting at
the hashes of the real queries numbered ⌊c·n/C⌋ (n of them), bitwise majority updates (+1 on ties,
empty clusters unchanged); each cluster's mean real query attends all keys, its members take the
result.

The planes are drawn at compile time and re-derived here from `seed` and the layer path as
tfcompiler documents: ``numpy.random.default_rng([seed, crc32(layer)]).standard_normal((d, bits))``;
hashes are taken in float32, as the compiled model computes them, so a sign near zero agrees."""
from __future__ import annotations

import math
import zlib

import numpy as np

from ..formulas import repeat_kv
from ..registry import ATTENTION
from .multi_head import MultiHead


def clustered(q, k, v, key_bias, options, layer: str):
    b, h, s, d = q.shape
    k, v = repeat_kv(q, k, v)
    planes = np.random.default_rng([options.seed, zlib.crc32(layer.encode())]).standard_normal((d, options.bits))
    real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
    c_count = options.clusters
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            bits = [tuple(1 if x >= 0 else -1 for x in row) for row in
                    q[bi, hi].astype(np.float32) @ planes.astype(np.float32)]

            def nearest(centroids, i):
                distance = [sum(x != y for x, y in zip(bits[i], c)) for c in centroids]
                return distance.index(min(distance))

            reals = [i for i in range(s) if real[bi, i]] or [0]
            centroids = [bits[reals[(c * len(reals)) // c_count]] for c in range(c_count)]
            for _ in range(options.iterations):
                groups = [[i for i in range(s) if real[bi, i] and nearest(centroids, i) == c] for c in range(c_count)]
                centroids = [tuple(1 if sum(bits[i][n] for i in g) >= 0 else -1 for n in range(len(bits[0])))
                             if g else centroids[c] for c, g in enumerate(groups)]
            cluster = [nearest(centroids, i) for i in range(s)]
            for c in set(cluster):
                group = [i for i in range(s) if real[bi, i] and cluster[i] == c]
                mean_query = q[bi, hi, group].mean(0) if group else np.zeros(d)
                scores = k[bi, hi] @ mean_query / math.sqrt(d) + (0 if key_bias is None else key_bias[bi])
                weights = np.exp(scores - scores.max())
                out[bi, hi, [i for i in range(s) if cluster[i] == c]] = weights @ v[bi, hi] / weights.sum()
    return out


@ATTENTION.register("clustered")
class Clustered(MultiHead):
    def attend(self, ref, q, k, v, site):
        return clustered(q, k, v, site.key_bias, site.options, site.name)
