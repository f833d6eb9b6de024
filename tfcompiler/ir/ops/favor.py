"""FAVOR+ attention (Performer; Choromanski et al. 2021) as one canonical op, so that its lowering can
take the keys and the queries by chunks of tokens (their random features, (B,H,S,m), are the largest
tensors of the layer).

favor_attention(q (B,H,S,Dh), k (B,Hkv,T,Dh), v (B,Hkv,T,Dv), features W (m, Dh), key_bias? (B|1,1,1,T),
kv_sum? (B,H,m,Dv), k_sum? (B,H,m), k_max? (B,H)) attrs causal, stateful, kernel_epsilon ε (0),
padded_keys (excluded), normaliser_epsilon δ (0) -> (B,H,S,Dv) [, kv_sum, k_sum, k_max]:

  φ(x) = (exp(W x' - |x'|²/2 - c) + ε) / √m,   x' = x / Dh^¼
  out_i = φ(q_i) · Σ_j φ(k_j) v_jᵀ / φ(q_i) · (Σ_j φ(k_j) + δ)      (j ≤ i when causal)

c is the queries' row maximum of W x' and the keys' maximum over every key (padded ones too) and
feature: constants that keep exp from overflowing and, with ε = δ = 0, cancel exactly in the output
(with either, a stateful op, whose stabiliser grows with later keys, is refused).
Padded keys (key bias not 0) add nothing to the sums (padded_keys: excluded), or only their values
are zeroed and their features still count in Σ φ(k) (normaliser). With `stateful` (causal only; a
decoder's cache) the sums start from those of earlier calls, kept with their stabiliser k_max (zeros
before the first call): the keys' c is then the maximum of k_max and the new keys' maximum, the past
sums rescaled by exp(k_max - c); the op also returns the sums after the last position and c. Each sum
is per query head.
"""
from __future__ import annotations

import numpy as np

from .linear import linear_attention
from .registry import OpTypeError, register


STATES = 3  # kv_sum, k_sum, k_max
PAPER_CONVENTIONS = {"kernel_epsilon": 0.0, "padded_keys": "excluded", "normaliser_epsilon": 0.0}
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
    if attrs.get("stateful") and (attrs.get("kernel_epsilon") or attrs.get("normaliser_epsilon")):
        raise OpTypeError("stateful favor attention has no ε or δ: they are added after the keys' stabiliser, "
                          "which grows with later keys, so the running sums cannot be rescaled to it")
    return [q.with_shape(q.shape[:3] + v.shape[3:])] + (sums if past else [])


def favor_features(x: np.ndarray, features: np.ndarray, stabilise_axes: tuple, floor=None, epsilon: float = 0.0):
    """φ(x) of (B,H,S,Dh), the stabiliser the maximum over `stabilise_axes` of W x' (and of `floor`,
    (B,H), when given), ε added after it; with a floor, (φ(x), the stabiliser (B,H))."""
    x = x.astype(np.float64) / x.shape[-1] ** 0.25
    projected = x @ features.astype(np.float64).T
    stabiliser = projected.max(axis=stabilise_axes, keepdims=True)
    if floor is not None:
        stabiliser = np.maximum(stabiliser, floor.astype(np.float64)[:, :, None, None])
    phi = np.exp(projected - 0.5 * (x * x).sum(-1, keepdims=True) - stabiliser - 0.5 * np.log(len(features)))
    phi = phi + epsilon / np.sqrt(len(features)) if epsilon else phi
    return phi if floor is None else (phi, stabiliser[:, :, 0, 0])


def favor_attention(q, k, v, features, key_bias=None, causal: bool = False, past=None, kernel_epsilon: float = 0.0,
                    padded_keys: str = "excluded", normaliser_epsilon: float = 0.0):
    """The attention; with ``past`` = (kv_sum, k_sum, k_max), (attention, kv_sum, k_sum, k_max) after it."""
    phi_q = favor_features(q, features, (-1,), epsilon=kernel_epsilon)
    if past is None:
        phi_k = favor_features(k, features, (2, 3), epsilon=kernel_epsilon)
    else:  # per query head, stabilised by the running maximum
        group = q.shape[1] // k.shape[1]
        k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
        phi_k, stabiliser = favor_features(k, features, (2, 3), past[2], kernel_epsilon)
        rescale = np.exp(past[2].astype(np.float64) - stabiliser)
        past = (past[0] * rescale[..., None, None], past[1] * rescale[..., None])
    if key_bias is not None:
        keep = np.swapaxes(key_bias, -1, -2) == 0
        phi_k, v = (phi_k * keep, v) if padded_keys == "excluded" else (phi_k, v * keep)
    if not causal:  # δ: one more key, features δ and value 0, that every query sees
        phi_k = np.concatenate([phi_k, np.full(phi_k.shape[:2] + (1,) + phi_k.shape[3:], normaliser_epsilon)], 2)
        v = np.concatenate([v, np.zeros(v.shape[:2] + (1,) + v.shape[3:])], 2)
        return linear_attention(phi_q, phi_k, v, causal, 0.0).astype(q.dtype)
    if past is None:  # δ starts the running key sum
        sums = phi_q.shape[:2] + phi_q.shape[3:]  # (B, H, m)
        start = (np.zeros(sums + v.shape[3:]), np.full(sums, normaliser_epsilon))
        return linear_attention(phi_q, phi_k, v, causal, EMPTY, past=start)[0].astype(q.dtype)
    out, kv_sum, k_sum = linear_attention(phi_q, phi_k, v, causal, EMPTY, past=past)
    return out.astype(q.dtype), kv_sum.astype(q.dtype), k_sum.astype(q.dtype), stabiliser.astype(q.dtype)


def _evaluate(attrs, *inputs):
    (q, k, v, features), bias, past = split_inputs(attrs, inputs)
    conventions = {name: attrs.get(name, paper) for name, paper in PAPER_CONVENTIONS.items()}
    out = favor_attention(q, k, v, features, *(bias or [None]), causal=attrs["causal"], past=past or None,
                          **conventions)
    return list(out) if past else [out]


register("favor_attention", (4, 8), _infer, _evaluate)
