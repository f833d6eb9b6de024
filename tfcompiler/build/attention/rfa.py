"""Attention kind `rfa`: random feature attention (Peng et al. 2021). Queries and keys are
normalised to unit length and mapped by random Fourier features

  φ(x) = √(1/D) [sin(W x), cos(W x)],   W (D, Dh) ~ N(0, σ⁻² I)

so φ(q)·φ(k) approximates the Gaussian kernel exp(-|q - k|² / 2σ²). W is drawn when the spec is
compiled (from `seed` and the layer's path) and stored as a constant. (The gated recurrent
variant is not built yet.)
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from ...spec.kinds import ATTENTION
from ...spec.schema import option
from .linearised import attend_linear, no_score_positions


@dataclass(frozen=True, kw_only=True)
class RfaOptions:
    """Random Fourier feature attention (Peng et al. 2021)."""

    features: int = option(64, doc="D: random frequencies per head (2·D features).", minimum=1)
    sigma: float = option(1.0, doc="σ: kernel width.", minimum=0.0)
    seed: int = option(0, doc="Seed of the random frequencies.", minimum=0)
    eps: float = option(1e-6, doc="Added to the normaliser.", minimum=0.0)

    def problems(self, spec):
        yield from no_score_positions("rfa", spec)


def fourier_features(ctx, x, matrix: np.ndarray):
    with ctx.at("random_features"):
        norm = ctx.op("sqrt", ctx.op("reduce_sum", ctx.op("mul", x, x), axes=(-1,)))
        unit = ctx.op("div", x, ctx.op("add", norm, ctx.constant(np.float32(1e-12))))
        angles = ctx.op("matmul", unit, ctx.constant(matrix.T.astype(np.float32)))
        scale = ctx.constant(np.float32(len(matrix) ** -0.5))
        return ctx.op("mul", ctx.op("concat", ctx.op("sin", angles), ctx.op("cos", angles), axis=-1), scale,
                      label="FourierFeatures")


def build_rfa(ctx, options: RfaOptions, spec, site):
    rng = np.random.default_rng([options.seed, zlib.crc32(ctx.origin.encode())])
    matrix = rng.standard_normal((options.features, spec.model.dh)) / options.sigma
    return attend_linear(ctx, spec, site, lambda c, x, q: fourier_features(c, x, matrix), options.eps)


ATTENTION.register("rfa", RfaOptions, build_rfa)
