"""Attention kind `prob_sparse`: Informer's ProbSparse attention (Zhou et al. 2021).
M(q_i) = max_j q_i·k_j − Σ_j q_i·k_j / T over U = c·⌈ln T⌉ sampled keys (evenly spaced over the real
keys: the ⌊r·n/U⌋-th of the n unpadded ones, as the compiled model documents); the top
u = c·⌈ln S⌉ queries (real ones before padding) attend normally (keys up to them in the masked
decoder), the rest output mean(V) over real keys, or in the decoder Σ_{j ≤ i} v_j over real keys
(Informer's V.cumsum). counts: hugging_face: every key sampled (U = T) and u = c·⌈ln(1 + S)⌉ (Hugging Face's
InformerProbSparseAttention with its random draw of T keys fixed to each key once)."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, repeat_kv, softmax
from ..registry import ATTENTION
from .multi_head import MultiHead


def prob_sparse(q, k, v, key_bias, factor: int, causal: bool = False, counts: str = "informer"):
    b, h, s, d = q.shape
    t = k.shape[2]
    k, v = repeat_kv(q, k, v)
    keep = np.ones((b, t)) if key_bias is None else (key_bias == 0).astype(float)
    def count(n, keys=False):
        if counts == "hugging_face":
            return n if keys else min(factor * math.ceil(math.log(1 + n)), n)
        return max(min(factor * math.ceil(math.log(n)), n), 1) if n > 1 else 1
    out = np.empty((b, h, s, v.shape[-1]))
    for bi in range(b):
        mean = (keep[bi][:, None] * v[bi]).sum(1) / max(keep[bi].sum(), 1)  # (H, d)
        reals = [j for j in range(t) if keep[bi, j]] or [0]
        samples = [reals[r * len(reals) // count(t, True)] for r in range(count(t, True))]
        for hi in range(h):
            dots = q[bi, hi] @ k[bi, hi].T  # (S, T)
            measure = dots[:, samples].max(-1) - dots[:, samples].sum(-1) / t
            ranked = sorted(range(s), key=lambda i: (0, -measure[i], i) if keep[bi, i + t - s] else (1, 0, i))
            active = set(ranked[:count(s)])
            for i in range(s):
                seen = np.arange(t) <= i + t - s if causal else np.ones(t, bool)
                if i in active:
                    bias = 0.0 if key_bias is None else key_bias[bi]
                    out[bi, hi, i] = softmax(np.where(seen, dots[i] / math.sqrt(d) + bias, NEG)) @ v[bi, hi]
                else:
                    out[bi, hi, i] = (keep[bi, seen][:, None] * v[bi, hi, seen]).sum(0) if causal else mean[hi]
    return out


@ATTENTION.register("prob_sparse")
class ProbSparse(MultiHead):
    def attend(self, ref, q, k, v, site):
        return prob_sparse(q, k, v, site.key_bias, site.options.factor, site.causal, site.options.counts)
