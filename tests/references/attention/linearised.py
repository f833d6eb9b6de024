"""Linearised attention (Katharopoulos et al. 2020), shared by the `linear`, `performer` and `rfa`
kinds, which differ in their feature map φ: V'_i = φ(q_i)ᵀ Σ_j φ(k_j) v_jᵀ / (φ(q_i)ᵀ Σ_j φ(k_j) + eps),
sums over j <= i when causal, padded keys left out; with RFA's gate (Peng et al. 2021, eq. 7) the
sums decay step by step instead."""
from __future__ import annotations

import zlib

import numpy as np

from ..formulas import repeat_kv
from .multi_head import MultiHead


def layer_rng(options, layer: str) -> np.random.Generator:
    """The random draws a kind fixes at compile time: seeded by its `seed` and the layer's path."""
    return np.random.default_rng([getattr(options, "seed", 0), zlib.crc32(layer.encode())])


def linearised(q, k, v, key_bias, causal: bool, phi, eps: float, gate=None):
    k, v = repeat_kv(q, k, v)
    fq, fk = phi(q), phi(k)
    if key_bias is not None:
        fk = fk * (key_bias == 0)[:, None, :, None]
    if gate is not None:  # RFA-Gate, step by step
        g = 1 / (1 + np.exp(-gate))  # (B, H, S)
        state, total = 0.0, 0.0
        out = np.zeros(q.shape[:3] + (v.shape[-1],))
        for t in range(q.shape[2]):
            decay, admit = g[:, :, t, None], 1 - g[:, :, t, None]
            state = decay[..., None] * state + admit[..., None] * np.einsum("bhf,bhd->bhfd", fk[:, :, t], v[:, :, t])
            total = decay * total + admit * fk[:, :, t]
            out[:, :, t] = (np.einsum("bhf,bhfd->bhd", fq[:, :, t], state)
                            / (np.einsum("bhf,bhf->bh", fq[:, :, t], total)[..., None] + eps))
        return out
    weights = fq @ fk.swapaxes(-1, -2)  # φ(q_i)·φ(k_j)
    if causal:
        s, t = weights.shape[-2:]
        weights = weights * np.tril(np.ones((s, t)), k=t - s)
    return (weights @ v) / (weights.sum(-1, keepdims=True) + eps)


class Linearised(MultiHead):
    """A linearised kind: its feature map and eps from the options; the rest is shared."""

    def features(self, ref, options, layer: str):
        """(φ, eps) for this layer."""
        raise NotImplementedError

    def gate(self, ref, site):
        return None

    def attend(self, ref, q, k, v, site):
        phi, eps = self.features(ref, site.options, site.name)
        return linearised(q, k, v, site.key_bias, site.causal, phi, eps, self.gate(ref, site))
