"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), positive orthogonal random features
φ(x) = exp(W x' - |x'|²/2)/√m with x' = x/d^¼, no eps.

W is drawn at compile time and stored only as an ONNX constant, so this file re-derives it from the
paper's ORF construction with the draws tfcompiler documents (`seed` and the layer path seed
``numpy.random.default_rng([seed, crc32(layer)])``): ⌈m/d⌉ blocks, each the transposed Q of the QR
decomposition of a d×d standard normal matrix, stacked and cut to m rows; then each row scaled to
the norm of one more standard normal d-vector (m of them drawn at once)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import ATTENTION
from .linearised import Linearised, layer_rng


def orthogonal_random_features(m: int, d: int, draw: np.random.Generator):
    """(m, d): Gaussian-norm rows, orthogonal within each block of d."""
    stacked = np.concatenate([np.linalg.qr(draw.standard_normal((d, d)))[0].T for _ in range(-(-m // d))])[:m]
    return stacked * np.linalg.norm(draw.standard_normal((m, d)), axis=1, keepdims=True)


@ATTENTION.register("performer")
class Performer(Linearised):
    def features(self, ref, options, layer):
        d = ref.spec.model.dh
        w = orthogonal_random_features(options.features, d, layer_rng(options, layer))

        def phi(x):
            x = x / d ** 0.25
            return np.exp(x @ w.T - (x ** 2).sum(-1, keepdims=True) / 2) / math.sqrt(len(w))
        return phi, 0.0
