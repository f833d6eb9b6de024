"""FAVOR+ attention (Performer; Choromanski et al. 2021) as one canonical op, so that its lowering can
take the keys and the queries by chunks of tokens (their random features, (B,H,S,m), are the largest
tensors of the layer).

favor_attention(q (B,H,S,Dh), k (B,Hkv,T,Dh), v (B,Hkv,T,Dv), features W (m, Dh), key_bias? (B|1,1,1,T),
kv_sum? (B,H,m,Dv), k_sum? (B,H,m), k_max? (B,H)) attrs causal, stateful -> (B,H,S,Dv) [, kv_sum, k_sum, k_max]:

  φ(x) = exp(W x' - |x'|²/2 - c) / √m,   x' = x / Dh^¼
  out_i = φ(q_i) · Σ_j φ(k_j) v_jᵀ / φ(q_i) · Σ_j φ(k_j)      (j ≤ i when causal)

c is the queries' row maximum of W x' and the keys' maximum over every key and feature: constants
that cancel exactly in the output and keep exp from overflowing. Padded keys (key bias not 0) add
nothing to the sums. With `stateful` (causal only; a decoder's cache) the sums start from those of
earlier calls, kept with their stabiliser k_max (zeros before the first call): the keys' c is then the
maximum of k_max and the new keys' maximum, the past sums rescaled by exp(k_max - c); the op also
returns the sums after the last position and c. Each sum is per query head.
"""
from __future__ import annotations

import numpy as np

from .linear import linear_attention
from .registry import OpTypeError, register


STATES = 3  # kv_sum, k_sum, k_max
# Added to a causal normaliser: a query with no real key at or before it (a left-padded row's pads) gets
# zeros, not 0/0 (whose NaN the next layer's keys would carry into every sum); far below any real one.
EMPTY = 1e-30


def split_inputs(attrs, inputs: list) -> tuple[list, list, list]:
    """(q, k, v, features), [key_bias] or [], and the past [kv_sum, k_sum, k_max] or []."""
    past = STATES if attrs.get("stateful") else 0
    return list(inputs[:4]), list(inputs[4:len(inputs) - past]), list(inputs[len(inputs) - past:] if past else [])


def _infer(attrs, types):
    (q, k, v, features), bias, past = split_inputs(attrs, types)
    if q.rank != 4 or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3] or features.shape[1:] != q.shape[3:]:
        raise OpTypeError(f"favor attention needs q (B,H,S,Dh), k and v (B,Hkv,T,..), features (m, Dh): "
                          f"{q}, {k}, {v}, {features}")
    m = features.shape[0]
    sums = [q.with_shape(q.shape[:2] + (m, v.shape[3])), q.with_shape(q.shape[:2] + (m,)), q.with_shape(q.shape[:2])]
    if len(bias) > 1 or attrs.get("stateful") and (
            not attrs["causal"] or len(past) != STATES or [t.shape for t in past] != [t.shape for t in sums]):
        raise OpTypeError(f"favor attention takes a key bias, and if stateful (causal) the past sums "
                          f"(B,H,m,Dv), (B,H,m) and their stabiliser (B,H): {types[4:]}")
    return [q.with_shape(q.shape[:3] + v.shape[3:])] + (sums if past else [])


def favor_features(x: np.ndarray, features: np.ndarray, stabilise_axes: tuple, floor=None):
    """φ(x) of (B,H,S,Dh), the stabiliser the maximum over `stabilise_axes` of W x' (and of `floor`,
    (B,H), when given); with a floor, (φ(x), the stabiliser (B,H))."""
    x = x.astype(np.float64) / x.shape[-1] ** 0.25
    projected = x @ features.astype(np.float64).T
    stabiliser = projected.max(axis=stabilise_axes, keepdims=True)
    if floor is not None:
        stabiliser = np.maximum(stabiliser, floor.astype(np.float64)[:, :, None, None])
    phi = np.exp(projected - 0.5 * (x * x).sum(-1, keepdims=True) - stabiliser - 0.5 * np.log(len(features)))
    return phi if floor is None else (phi, stabiliser[:, :, 0, 0])


def favor_attention(q, k, v, features, key_bias=None, causal: bool = False, past=None):
    """The attention; with ``past`` = (kv_sum, k_sum, k_max), (attention, kv_sum, k_sum, k_max) after it."""
    phi_q = favor_features(q, features, (-1,))
    if past is None:
        phi_k = favor_features(k, features, (2, 3))
    else:  # per query head, stabilised by the running maximum
        group = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        phi_k, stabiliser = favor_features(k, features, (2, 3), past[2])
        rescale = np.exp(past[2].astype(np.float64) - stabiliser)
        past = (past[0] * rescale[..., None, None], past[1] * rescale[..., None])
    if key_bias is not None:
        phi_k = phi_k * (np.swapaxes(key_bias, -1, -2) == 0)
    if past is None:
        return linear_attention(phi_q, phi_k, v, causal, EMPTY if causal else 0.0).astype(q.dtype)
    out, kv_sum, k_sum = linear_attention(phi_q, phi_k, v, causal, EMPTY, past=past)
    return out.astype(q.dtype), kv_sum.astype(q.dtype), k_sum.astype(q.dtype), stabiliser.astype(q.dtype)


def _evaluate(attrs, *inputs):
    (q, k, v, features), bias, past = split_inputs(attrs, inputs)
    out = favor_attention(q, k, v, features, *(bias or [None]), causal=attrs["causal"], past=past or None)
    return list(out) if past else [out]


register("favor_attention", (4, 8), _infer, _evaluate)
