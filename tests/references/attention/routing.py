"""Attention kind `routing`: the Routing Transformer (Roy et al. 2021), per query over sets. Centroid
c takes the ⌈S/C⌉ queries and the ⌈S/C⌉ keys whose unit vectors score highest against it (earlier
position first among equals; padding after every real position, in position order), so padding
never takes a real token's place; a query attends, in each centroid that took it, that centroid's
real keys (not after it in a decoder); its output is the mean over those centroids with a visible
key, zero with none. The centroids are the model's `centroids` weight. The first `local_heads`
heads attend the window |i - j| <= `window` instead.

Under `positional: rope` every head's queries and keys are rotated (the routing heads' values too with
`rotate_values`). With `shared_qk` there is no key projection: the keys are the unit queries, each
centroid takes as keys the queries it took, and a query's own key weighs only where it is its one visible
key. With `padding_routing: content` padding is routed like any position, and a query a centroid
shows no real key takes, in an encoder, the mean of that centroid's values. With `commitment_loss` the output
`routing_commitment_loss` sums over the layers the factor times the mean over heads, positions (padding
too) and features of (x/‖x‖ - μ)², x each query and key and μ its nearest centroid."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, attention, repeat_kv
from ..registry import ATTENTION, POSITIONS, Logits
from .multi_head import MultiHead


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def commitment(q, k, centroids, factor: float) -> float:
    """factor · mean((x/‖x‖ - μ_nearest(x))²) over the queries and keys (B, H, S, d), centroids (H, C, d)."""
    x = unit(np.concatenate([q, k], axis=2) if k is not None else q)
    total = 0.0
    for hi in range(x.shape[1]):
        for row in x[:, hi].reshape(-1, x.shape[-1]):
            nearest = centroids[hi][np.argmax(centroids[hi] @ row)]
            total += np.sum((row - nearest) ** 2)
    return factor * total / x.size


def routed(q, k, v, key_bias, centroids, causal: bool, shared_qk: bool = False, by_content: bool = False):
    b, h, s, d = q.shape
    k, v = repeat_kv(q, k, v)
    window = math.ceil(s / centroids.shape[1])
    real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
    out = np.zeros(q.shape[:3] + (v.shape[-1],))
    for bi in range(b):
        for hi in range(h):
            def nearest(x, mu):
                score = [mu @ (x[p] / np.linalg.norm(x[p])) for p in range(s)]
                return sorted(range(s), key=lambda p: (0, -score[p], p) if real[bi, p] or by_content
                              else (1, 0, p))[:window]
            taken = [(nearest(q[bi, hi], mu),) * 2 if shared_qk else (nearest(q[bi, hi], mu), nearest(k[bi, hi], mu))
                     for mu in centroids[hi]]
            for i in range(s):
                results = []
                for queries, keys in taken:
                    seen = [j for j in keys if real[bi, j] and (not causal or j <= i)]
                    if i in queries and seen:
                        key_rows = unit(q[bi, hi]) if shared_qk else k[bi, hi]
                        scores = np.array([-1e5 if shared_qk and j == i else q[bi, hi, i] @ key_rows[j] / math.sqrt(d)
                                           for j in seen])
                        weights = np.exp(scores - scores.max())
                        results.append(weights @ v[bi, hi, seen] / weights.sum())
                    elif i in queries and by_content and not causal:  # no real key: the package's softmax is uniform
                        results.append(v[bi, hi, keys].mean(axis=0))
                out[bi, hi, i] = np.mean(results, axis=0) if results else 0.0
    return out


@ATTENTION.register("routing")
class Routing(MultiHead):
    def project(self, ref, x, memory, site):
        if not site.options.shared_qk:
            return super().project(ref, x, memory, site)
        q = ref.heads(x, f"{site.name}.query")
        return q, q, ref.heads(memory, f"{site.name}.value")

    def attend(self, ref, q, k, v, site):
        options = site.options
        local, s, t = options.local_heads, q.shape[2], k.shape[2]
        if site.positional is not None and site.positional.KIND == "rope":
            logits = Logits(q, k, 1.0, 0.0)
            POSITIONS[site.positional].attend(ref, site.positional, logits, site)
            q, k = logits.q, logits.k
            if options.rotate_values:  # the scheme's own rotation, applied to the values at the keys' positions
                values = Logits(v, v, 1.0, 0.0)
                POSITIONS[site.positional].attend(ref, site.positional, values, site)
                v = np.concatenate([v[:, :local], values.k[:, local:]], axis=1)
        centroids = ref.w[f"{site.name}.centroids"]
        if options.commitment_loss is not None:
            loss = commitment(q[:, local:], None if options.shared_qk else repeat_kv(q, k)[0][:, local:],
                              centroids, options.commitment_loss)
            ref.present["routing_commitment_loss"] = ref.present.get("routing_commitment_loss", 0.0) + loss
        out = routed(q[:, local:], k[:, local:], v[:, local:], site.key_bias, centroids, site.causal,
                     options.shared_qk, options.padding_routing == "content")
        if not local:
            return out
        d = np.arange(s)[:, None] - np.arange(t)[None, :]
        near = (np.abs(d) <= site.options.window) & ((d >= 0) if site.causal else True)
        windowed, _ = attention(q[:, :local], k[:, :local], v[:, :local], 1 / math.sqrt(q.shape[-1]), site.key_bias,
                                site.causal, head_bias=np.where(near, 0.0, NEG))
        return np.concatenate([windowed, out], axis=1)
