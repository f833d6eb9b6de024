"""FAVOR+ attention (Performer; Choromanski et al. 2021) as one canonical op, so that its lowering can
take the keys and the queries by chunks of tokens (their random features, (B,H,S,m), are the largest
tensors of the layer).

favor_attention(q (B,H,S,Dh), k (B,Hkv,T,Dh), v (B,Hkv,T,Dv), features W (m, Dh), key_bias? (B|1,1,1,T))
attrs causal -> (B,H,S,Dv):

  φ(x) = exp(W x' - |x'|²/2 - c) / √m,   x' = x / Dh^¼
  out_i = φ(q_i) · Σ_j φ(k_j) v_jᵀ / φ(q_i) · Σ_j φ(k_j)      (j ≤ i when causal)

c is the queries' row maximum of W x' and the keys' maximum over every key and feature: constants
that cancel exactly in the output and keep exp from overflowing. Padded keys (key bias not 0) add
nothing to the sums.
"""
from __future__ import annotations

import numpy as np

from .linear import linear_attention
from .registry import OpTypeError, register


def _infer(attrs, types):
    q, k, v, features = types[:4]
    if q.rank != 4 or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3] or features.shape[1:] != q.shape[3:]:
        raise OpTypeError(f"favor attention needs q (B,H,S,Dh), k and v (B,Hkv,T,..), features (m, Dh): "
                          f"{q}, {k}, {v}, {features}")
    return [q.with_shape(q.shape[:3] + v.shape[3:])]


def favor_features(x: np.ndarray, features: np.ndarray, stabilise_axes: tuple) -> np.ndarray:
    """φ(x) of (B,H,S,Dh), the stabiliser the maximum over `stabilise_axes` of W x'."""
    x = x.astype(np.float64) / x.shape[-1] ** 0.25
    projected = x @ features.astype(np.float64).T
    shift = (0.5 * (x * x).sum(-1, keepdims=True) + projected.max(axis=stabilise_axes, keepdims=True)
             + 0.5 * np.log(len(features)))
    return np.exp(projected - shift)


def favor_attention(q, k, v, features, key_bias=None, causal: bool = False):
    phi_q, phi_k = favor_features(q, features, (-1,)), favor_features(k, features, (2, 3))
    if key_bias is not None:
        phi_k = phi_k * (np.swapaxes(key_bias, -1, -2) == 0)
    return linear_attention(phi_q, phi_k, v, causal, 0.0).astype(q.dtype)


register("favor_attention", (4, 5), _infer,
         lambda attrs, q, k, v, features, bias=None: [favor_attention(q, k, v, features, bias, attrs["causal"])])
