"""Attention kind `rfa`: Random Feature Attention (Peng et al. 2021), φ(x) = √(1/D)[sin(W x̂), cos(W x̂)]
on unit x̂, W ~ N(0, 1/σ²) drawn at compile time — re-derived here from `seed` and the layer path
(``numpy.random.default_rng([seed, crc32(layer)]).standard_normal((D, d)) / σ``, as tfcompiler
documents); with `gate`, RFA-Gate's learned per-step decay σ(x W_g)."""
from __future__ import annotations

import math

import numpy as np

from ..registry import ATTENTION
from .linearised import Linearised, layer_rng


@ATTENTION.register("rfa")
class Rfa(Linearised):
    def features(self, ref, options, layer):
        w = layer_rng(options, layer).standard_normal((options.features, ref.spec.model.dh)) / options.sigma

        def phi(x):
            angles = (x / np.linalg.norm(x, axis=-1, keepdims=True)) @ w.T
            return np.concatenate([np.sin(angles), np.cos(angles)], -1) / math.sqrt(len(w))
        return phi, options.eps

    def gate(self, ref, site):
        """RFA-Gate's logits (B, H, S)."""
        return ref.linear(site.x, f"{site.name}.gate").transpose(0, 2, 1) if site.options.gate is True else None
