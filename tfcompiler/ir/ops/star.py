"""The Star-Transformer's satellite attention (Guo et al. 2019) as one canonical op.

star_attention(q (B,H,S,Dh), k, v (B,H,S,·) of the satellites, ke, ve (B,H,S,·) of the token
embeddings, ks, vs (B,H,1,·) of the relay, key_bias? (B|1,1,1,S)) attrs scale -> (B,H,S,Dv).

Satellite i attends a context of five: its ring neighbours i-1 and i+1 (absent at the ends, and
hidden when padded), itself, its own token embedding e_i and the relay node s: scores and values
for 5 keys per position, O(S) time and memory. The relay's own update is ordinary attention and
is built around this op (tfcompiler.builders.attention.star).
"""
from __future__ import annotations

import numpy as np

from .nn import MASKED, softmax
from .registry import OpTypeError, register


def _infer(attrs, types):
    q, k, v, ke, ve, ks, vs, *bias = types
    if k.shape != ke.shape or v.shape != ve.shape or ks.shape[2] != 1 or q.shape[:3] != k.shape[:3]:
        raise OpTypeError(f"star attention takes satellites, embeddings and a relay of one position: "
                          f"{q}, {k}, {ke}, {ks}")
    return [q.with_shape(q.shape[:3] + v.shape[3:])]


def context(x, xe, xs):
    """(B,H,S,D) satellites, embeddings, (B,H,1,D) relay -> (B,H,S,5,D): i-1, i, i+1, e_i, s."""
    ring = np.pad(x, ((0, 0), (0, 0), (1, 1), (0, 0)))
    s = x.shape[2]
    relay = np.broadcast_to(xs, x.shape[:2] + (s, xs.shape[3]))
    return np.stack([ring[:, :, :s], x, ring[:, :, 2:], xe, relay], axis=3)


def star_attention(q, k, v, ke, ve, ks, vs, key_bias, scale: float):
    b, h, s, _ = q.shape
    keys = context(k.astype(np.float64), ke, ks)
    values = context(v.astype(np.float64), ve, vs)
    scores = np.einsum("bhsd,bhsnd->bhsn", q.astype(np.float64), keys) * scale
    bias = np.zeros((1, 1, s)) if key_bias is None else key_bias[:, :, 0]  # (B|1, 1, S)
    ring = np.pad(bias, ((0, 0), (0, 0), (1, 1)), constant_values=MASKED)  # ends: no neighbour
    zero = np.zeros_like(bias)
    scores = scores + np.stack([ring[..., :s], zero, ring[..., 2:], zero, zero], axis=-1)
    return np.einsum("bhsn,bhsnd->bhsd", softmax(scores), values).astype(np.float32)


register("star_attention", (7, 8), _infer,
         lambda attrs, q, k, v, ke, ve, ks, vs, bias=None: [star_attention(q, k, v, ke, ve, ks, vs, bias,
                                                                          attrs["scale"])])
