"""Linearised attention and the reductions its feature maps need.

linear_attention(phi_q (B,H,S,F), phi_k (B,Hkv,T,F), v (B,Hkv,T,Dv), gate? (B,H,S)) attrs causal, eps
  -> out_i = phi_q_i · Σ_j phi_k_j v_jᵀ / (phi_q_i · Σ_j phi_k_j + eps)   (j <= i when causal)
The kernel trick of Katharopoulos et al. 2020: time and memory linear in the length. With gate
logits a (causal only; RFA's gated recurrence, Peng et al. 2021) the sums decay: with
g_t = σ(a_t), S_t = g_t S_{t-1} + (1 - g_t) phi_k_t v_tᵀ and z_t = g_t z_{t-1} + (1 - g_t) phi_k_t. Feature maps
(elu + 1, FAVOR+ random features, random Fourier features) are built from ordinary IR ops.
reduce_max / reduce_sum / reduce_mean(x) attrs axes, keepdims.
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def _linear_infer(attrs, types):
    q, k, v, *gate = types
    if gate and (not attrs["causal"] or gate[0].shape != q.shape[:3]):
        raise OpTypeError(f"a gate needs causal attention and logits (B,H,S): {gate[0]} for {q}")
    if q.rank != 4 or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3]:
        raise OpTypeError(f"linear attention needs phi_q (B,H,S,F), phi_k (B,Hkv,T,F), v (B,Hkv,T,Dv): {q}, {k}, {v}")
    if attrs["causal"] and q.shape[2] != k.shape[2]:
        raise OpTypeError("causal linear attention needs as many keys as queries")
    return [q.with_shape(q.shape[:3] + v.shape[3:])]


def linear_attention(phi_q, phi_k, v, causal: bool, eps: float, gate=None):
    group = phi_q.shape[1] // phi_k.shape[1]
    phi_k, v = np.repeat(phi_k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    q = phi_q.astype(np.float64)
    if gate is not None:  # the recurrence, step by step
        g = 1 / (1 + np.exp(-gate.astype(np.float64)))
        state = np.zeros(q.shape[:2] + (q.shape[3], v.shape[3]))
        normaliser = np.zeros(q.shape[:2] + q.shape[3:])
        numerator, denominator = np.zeros(q.shape[:3] + v.shape[3:]), np.zeros(q.shape[:3] + (1,))
        for t in range(q.shape[2]):
            decay, admit = g[:, :, t, None], 1 - g[:, :, t, None]
            state = decay[..., None] * state + admit[..., None] * phi_k[:, :, t, :, None] * v[:, :, t, None, :]
            normaliser = decay * normaliser + admit * phi_k[:, :, t]
            numerator[:, :, t] = np.einsum("bhf,bhfd->bhd", q[:, :, t], state)
            denominator[:, :, t, 0] = np.einsum("bhf,bhf->bh", q[:, :, t], normaliser)
    elif causal:
        state = np.cumsum(phi_k[..., :, None] * v[..., None, :], axis=2)  # (B,H,S,F,Dv)
        numerator = np.einsum("bhsf,bhsfd->bhsd", q, state)
        denominator = np.einsum("bhsf,bhsf->bhs", q, np.cumsum(phi_k, axis=2))[..., None]
    else:
        numerator = q @ (np.swapaxes(phi_k, -1, -2) @ v)
        denominator = q @ phi_k.sum(axis=2)[..., None]
    return (numerator / (denominator + eps)).astype(phi_q.dtype)


def _reduce_infer(attrs, types):
    (x,) = types
    axes = [a % x.rank for a in attrs["axes"]]
    keep = attrs.get("keepdims", True)
    return [x.with_shape(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)]


register("linear_attention", (3, 4), _linear_infer,
         lambda attrs, q, k, v, gate=None: [linear_attention(q, k, v, attrs["causal"], attrs.get("eps", 0.0), gate)])
for _name, _fn in {"reduce_max": np.max, "reduce_sum": np.sum, "reduce_mean": np.mean}.items():
    register(_name, (1, 1), _reduce_infer,
             lambda attrs, x, fn=_fn: [np.asarray(fn(x, axis=tuple(attrs["axes"]),
                                                     keepdims=attrs.get("keepdims", True))).astype(x.dtype)])
