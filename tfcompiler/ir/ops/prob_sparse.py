"""Informer's ProbSparse self-attention (Zhou et al. 2021) as one canonical op.

prob_sparse_attention(q (B,H,S,Dh), k (B,Hkv,T,Dh), v (B,Hkv,T,Dv), key_bias? (B|1,1,1,T)) attrs factor,
scale, causal -> (B,H,S,Dv):
  U = min(factor·⌈ln T⌉, T) keys are sampled — deterministically, the evenly spaced real keys j_r,
  the ⌊r·n/U⌋-th of the n unpadded ones (Informer draws them at random on every call); each
  query's sparsity measure is M(q_i) = max_r q_i·k_{j_r} − (Σ_r q_i·k_{j_r}) / T (as Informer's
  code computes it); the u = min(factor·⌈ln S⌉, S) queries with the largest M (padded queries
  after every real one, so padding never takes a real query's place) get full softmax attention
  over the keys (key bias added), every other query outputs the mean of the real values.
  Causal (Informer's masked decoder self-attention): the chosen queries' keys after them are
  masked, and every other query outputs the running sum of the real values up to its position
  (Informer's code takes V.cumsum). Queries sit at the end of the keys (offset T - S).
  attr counts "hugging_face" (absent: "informer"): U = T keys, every real one, and u = min(factor·⌈ln(1 + S)⌉, S)
  queries (Hugging Face's InformerProbSparseAttention, its random draw of T keys fixed to each key once).
"""
from __future__ import annotations

import math

import numpy as np

from .nn import MASKED, attention_infer, softmax, rows_of, spaced_real
from .registry import register


def sample_count(factor: int, length: int, counts: str = "informer", keys: bool = False) -> int:
    if counts == "hugging_face":
        return length if keys else min(factor * math.ceil(math.log1p(length)), length)
    return min(factor * math.ceil(math.log(length)), length) if length > 1 else 1


def prob_sparse_attention(q, k, v, key_bias, factor: int, scale: float, causal: bool = False,
                          counts: str = "informer"):
    b, h, s, _ = q.shape
    t = k.shape[2]
    group = h // k.shape[1]
    k, v = np.repeat(k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    q = q.astype(np.float64)
    keep = np.ones((b, 1, t), bool) if key_bias is None else (np.broadcast_to(key_bias, (b, 1, 1, t))[:, :, 0] == 0)
    keys = rows_of(k, spaced_real(keep[:, 0], sample_count(factor, t, counts, keys=True)))
    sampled = q @ np.swapaxes(keys, -1, -2)  # (B,H,S,U)
    measure = np.where(keep[:, :, t - s:], sampled.max(-1) - sampled.sum(-1) / t, -np.inf)
    top = np.argsort(-measure, axis=-1, kind="stable")[..., :sample_count(factor, s, counts)]  # (B,H,u)
    if causal:
        out = np.cumsum(keep[..., None] * v, axis=2)[:, :, t - s:]
    else:
        mean = (keep[..., None] * v).sum(2, keepdims=True) / np.maximum(keep.sum(-1)[..., None, None], 1)
        out = np.broadcast_to(mean, (b, h, s, v.shape[-1])).copy()
    chosen = np.take_along_axis(q, top[..., None], axis=2)  # (B,H,u,Dh)
    scores = chosen @ np.swapaxes(k, -1, -2) * scale
    if key_bias is not None:
        scores = scores + key_bias
    if causal:
        scores = np.where(np.arange(t) > top[..., None] + (t - s), MASKED, scores)
    np.put_along_axis(out, top[..., None], softmax(scores) @ v, axis=2)
    return out.astype(np.float32)


register("prob_sparse_attention", (3, 4), attention_infer,
         lambda attrs, q, k, v, bias=None: [prob_sparse_attention(q, k, v, bias, attrs["factor"], attrs["scale"],
                                                                attrs.get("causal", False),
                                                                attrs.get("counts", "informer"))])
