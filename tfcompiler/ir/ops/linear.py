"""Linearised attention and the reductions its feature maps need.

linear_attention(phi_q (B,H,S,F), phi_k (B,Hkv,T,F), v (B,Hkv,T,Dv), gate? (B,H,S), kv_sum? (B,H,F,Dv),
k_sum? (B,H,F)) attrs causal, eps, stateful
  -> out_i = phi_q_i · S_i / (phi_q_i · z_i + eps),  S_i = Σ_j phi_k_j v_jᵀ, z_i = Σ_j phi_k_j   (j <= i when causal)
The kernel trick of Katharopoulos et al. 2020: time and memory linear in the length. With gate
logits a (causal only; RFA's gated recurrence, Peng et al. 2021) the sums decay: with
g_t = σ(a_t), S_t = g_t S_{t-1} + (1 - g_t) phi_k_t v_tᵀ and z_t = g_t z_{t-1} + (1 - g_t) phi_k_t. With
`stateful` (causal only; a decoder's cache) the sums start from kv_sum and k_sum, the ones after earlier calls,
instead of zeros, and the op also returns the sums after its last position: a step costs O(1) in the length.
Feature maps (elu + 1, FAVOR+ random features, random Fourier features) are built from ordinary IR ops.
reduce_max / reduce_sum / reduce_mean(x) attrs axes, keepdims.
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def split_inputs(attrs, inputs: list) -> tuple[list, object, list]:
    """(phi_q, phi_k, v), the gate or None, and the past sums [] or [kv_sum, k_sum]."""
    states = 2 if attrs.get("stateful") else 0
    qkv, rest = list(inputs[:3]), list(inputs[3:])
    gate = rest[0] if len(rest) > states else None
    return qkv, gate, rest[len(rest) - states:] if states else []


def _linear_infer(attrs, types):
    (q, k, v), gate, past = split_inputs(attrs, types)
    if gate is not None and (not attrs["causal"] or gate.shape != q.shape[:3]):
        raise OpTypeError(f"a gate needs causal attention and logits (B,H,S): {gate} for {q}")
    if q.rank != 4 or k.shape[:3] != v.shape[:3] or q.shape[3] != k.shape[3]:
        raise OpTypeError(f"linear attention needs phi_q (B,H,S,F), phi_k (B,Hkv,T,F), v (B,Hkv,T,Dv): {q}, {k}, {v}")
    if attrs["causal"] and q.shape[2] != k.shape[2]:
        raise OpTypeError("causal linear attention needs as many keys as queries")
    sums = [q.with_shape(q.shape[:2] + (q.shape[3], v.shape[3])), q.with_shape(q.shape[:2] + q.shape[3:])]
    if past and (not attrs["causal"] or [t.shape for t in past] != [t.shape for t in sums]):
        raise OpTypeError(f"past sums need causal attention and shapes (B,H,F,Dv), (B,H,F): {past[0]}, {past[1]}")
    if len(types) != 3 + (gate is not None) + len(past) or attrs.get("stateful") and not past:
        raise OpTypeError(f"linear attention takes phi_q, phi_k, v, a gate, and two sums if stateful: {len(types)}")
    return [q.with_shape(q.shape[:3] + v.shape[3:])] + (sums if past else [])


def linear_attention(phi_q, phi_k, v, causal: bool, eps: float, gate=None, past=None):
    """The attention; with ``past`` = (kv_sum, k_sum), the sums start from them and the result is
    (attention, kv_sum, k_sum) with the sums after the last position."""
    group = phi_q.shape[1] // phi_k.shape[1]
    phi_k, v = np.repeat(phi_k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    q = phi_q.astype(np.float64)
    state = np.zeros(q.shape[:2] + (q.shape[3], v.shape[3])) if past is None else past[0].astype(np.float64)
    normaliser = np.zeros(q.shape[:2] + q.shape[3:]) if past is None else past[1].astype(np.float64)
    if gate is not None:  # the recurrence, step by step
        g = 1 / (1 + np.exp(-gate.astype(np.float64)))
        numerator, denominator = np.zeros(q.shape[:3] + v.shape[3:]), np.zeros(q.shape[:3] + (1,))
        for t in range(q.shape[2]):
            decay, admit = g[:, :, t, None], 1 - g[:, :, t, None]
            state = decay[..., None] * state + admit[..., None] * phi_k[:, :, t, :, None] * v[:, :, t, None, :]
            normaliser = decay * normaliser + admit * phi_k[:, :, t]
            numerator[:, :, t] = np.einsum("bhf,bhfd->bhd", q[:, :, t], state)
            denominator[:, :, t, 0] = np.einsum("bhf,bhf->bh", q[:, :, t], normaliser)
    elif causal:
        states = state[:, :, None] + np.cumsum(phi_k[..., :, None] * v[..., None, :], axis=2)  # (B,H,S,F,Dv)
        normalisers = normaliser[:, :, None] + np.cumsum(phi_k, axis=2)
        numerator = np.einsum("bhsf,bhsfd->bhsd", q, states)
        denominator = np.einsum("bhsf,bhsf->bhs", q, normalisers)[..., None]
        if q.shape[2]:
            state, normaliser = states[:, :, -1], normalisers[:, :, -1]
    else:
        numerator = q @ (np.swapaxes(phi_k, -1, -2) @ v)
        denominator = q @ phi_k.sum(axis=2)[..., None]
    out = (numerator / (denominator + eps)).astype(phi_q.dtype)
    return out if past is None else (out, state.astype(phi_q.dtype), normaliser.astype(phi_q.dtype))


def _evaluate(attrs, *inputs):
    (q, k, v), gate, past = split_inputs(attrs, inputs)
    out = linear_attention(q, k, v, attrs["causal"], attrs.get("eps", 0.0), gate, past or None)
    return list(out) if past else [out]


def _reduce_infer(attrs, types):
    (x,) = types
    axes = [a % x.rank for a in attrs["axes"]]
    keep = attrs.get("keepdims", True)
    return [x.with_shape(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)]


register("linear_attention", (3, 6), _linear_infer, _evaluate)
for _name, _fn in {"reduce_max": np.max, "reduce_sum": np.sum, "reduce_mean": np.mean}.items():
    register(_name, (1, 1), _reduce_infer,
             lambda attrs, x, fn=_fn: [np.asarray(fn(x, axis=tuple(attrs["axes"]),
                                                     keepdims=attrs.get("keepdims", True))).astype(x.dtype)])
