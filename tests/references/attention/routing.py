"""Attention kind `routing`: the Routing Transformer (Roy et al. 2021), per query over sets. Centroid
c takes the ⌈S/C⌉ queries and the ⌈S/C⌉ keys whose unit vectors score highest against it (earlier
position first among equals; padding after every real position, in position order), so padding
never takes a real token's place; a query attends, in each centroid that took it, that centroid's
real keys (not after it in a decoder); its output is the mean over those centroids with a visible
key, zero with none. The centroids are the model's `centroids` weight. The first `local_heads`
heads attend the window |i - j| <= `window` instead."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, attention, repeat_kv
from ..registry import ATTENTION
from .multi_head import MultiHead


def routed(q, k, v, key_bias, centroids, causal: bool):
    b, h, s, d = q.shape
    k, v = repeat_kv(q, k, v)
    window = math.ceil(s / centroids.shape[1])
    real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            def nearest(x, mu):
                score = [mu @ (x[p] / np.linalg.norm(x[p])) for p in range(s)]
                return sorted(range(s), key=lambda p: (0, -score[p], p) if real[bi, p] else (1, 0, p))[:window]
            taken = [(nearest(q[bi, hi], mu), nearest(k[bi, hi], mu)) for mu in centroids[hi]]
            for i in range(s):
                results = []
                for queries, keys in taken:
                    seen = [j for j in keys if real[bi, j] and (not causal or j <= i)]
                    if i in queries and seen:
                        scores = np.array([q[bi, hi, i] @ k[bi, hi, j] / math.sqrt(d) for j in seen])
                        weights = np.exp(scores - scores.max())
                        results.append(weights @ v[bi, hi, seen] / weights.sum())
                out[bi, hi, i] = np.mean(results, axis=0) if results else 0.0
    return out


@ATTENTION.register("routing")
class Routing(MultiHead):
    def attend(self, ref, q, k, v, site):
        local, s, t = site.options.local_heads, q.shape[2], k.shape[2]
        out = routed(q[:, local:], k[:, local:], v[:, local:], site.key_bias, ref.w[f"{site.name}.centroids"],
                     site.causal)
        if not local:
            return out
        d = np.arange(s)[:, None] - np.arange(t)[None, :]
        near = (np.abs(d) <= site.options.window) & ((d >= 0) if site.causal else True)
        windowed, _ = attention(q[:, :local], k[:, :local], v[:, :local], 1 / math.sqrt(q.shape[-1]), site.key_bias,
                                site.causal, head_bias=np.where(near, 0.0, NEG))
        return np.concatenate([windowed, out], axis=1)
