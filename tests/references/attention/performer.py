"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), positive orthogonal random features
φ(x) = (exp(W x' - |x'|²/2 - c) + ε)/√m with x' = x/d^¼, written as a dense (S, T) weight matrix:
out_i = Σ_j φ(q_i)·φ(k_j) r_j v_j / (Σ_j φ(q_i)·φ(k_j) n_j + δ Σ_f φ(q_i)_f), j ≤ i when causal, where
r_j is 0 for a padded key (1 else) and n_j is r_j (padded_keys: excluded, the paper) or 1 (normaliser:
performer-pytorch zeroes padded values only). c is a query's own maximum of W x' and, for the keys, the
maximum over every key of the sequence (padded ones too) and every feature: it cancels when ε = 0.
The paper: ε = δ = 0, padded keys excluded.

W is the layer's `projection` weight (projection: weights); else it is drawn at compile time and stored
only as an ONNX constant, so this file re-derives it from the paper's ORF construction with the draws
tfcompiler documents (`seed` and the layer path seed ``numpy.random.default_rng([seed, crc32(layer)])``):
⌈m/d⌉ blocks, each the transposed Q of the QR decomposition of a d×d standard normal matrix, stacked and
cut to m rows; then each row scaled to the norm of one more standard normal d-vector (m of them drawn at
once)."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import repeat_kv
from ..registry import ATTENTION
from .linearised import layer_rng
from .multi_head import MultiHead


def orthogonal_random_features(m: int, d: int, draw: np.random.Generator):
    """(m, d): Gaussian-norm rows, orthogonal within each block of d."""
    stacked = np.concatenate([np.linalg.qr(draw.standard_normal((d, d)))[0].T for _ in range(-(-m // d))])[:m]
    return stacked * np.linalg.norm(draw.standard_normal((m, d)), axis=1, keepdims=True)


def favor_features(x, w, epsilon: float, stabilise_axes):
    """φ(x) for x (B, H, S, d), its stabiliser the maximum of W x' over `stabilise_axes`."""
    x = x / x.shape[-1] ** 0.25
    projected = x @ w.T
    stabiliser = projected.max(axis=stabilise_axes, keepdims=True)
    return (np.exp(projected - (x ** 2).sum(-1, keepdims=True) / 2 - stabiliser) + epsilon) / math.sqrt(len(w))


@ATTENTION.register("performer")
class Performer(MultiHead):
    def projection(self, ref, options, layer: str, d: int):
        if options.projection == "weights":
            return ref.w[f"{layer}.projection"]
        return orthogonal_random_features(options.features, d, layer_rng(options, layer))

    def attend(self, ref, q, k, v, site):
        options = site.options
        w = self.projection(ref, options, site.name, q.shape[-1])
        fq = favor_features(q, w, options.kernel_epsilon, (-1,))
        fk = favor_features(k, w, options.kernel_epsilon, (2, 3))
        fk, v = repeat_kv(q, fk, v)
        s, t = q.shape[2], k.shape[2]
        weights = fq @ fk.swapaxes(-1, -2)  # (B, H, S, T)
        if site.causal:
            weights = weights * np.tril(np.ones((s, t)), k=t - s)
        real = np.ones((1, t)) if site.key_bias is None else (site.key_bias == 0).astype(float)
        counted = real if options.padded_keys == "excluded" else np.ones_like(real)
        numerator = (weights * real[:, None, None, :]) @ v
        denominator = (weights * counted[:, None, None, :]).sum(-1) + options.normaliser_epsilon * fq.sum(-1)
        return numerator / denominator[..., None]
