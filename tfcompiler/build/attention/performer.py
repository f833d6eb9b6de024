"""Attention kind `performer`: FAVOR+ (Choromanski et al. 2021), softmax attention approximated by
positive orthogonal random features

  φ(x) = exp(W x' - |x'|²/2) / √m,   x' = x / Dh^(1/4)

W (m, Dh) has orthogonal Gaussian blocks with rows scaled to chi-distributed norms; it is drawn
when the spec is compiled (from `seed` and the layer's path) and stored in the ONNX as a constant,
so every run uses the same features. Before the exponential, queries subtract their row maximum and
keys their maximum over the sequence: constants that cancel exactly in the normalised output and
keep exp from overflowing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...spec.kinds import ATTENTION
from ...spec.schema import option
from .linearised import attend_linear, no_score_positions


@dataclass(frozen=True, kw_only=True)
class PerformerOptions:
    """FAVOR+ positive orthogonal random features (Choromanski et al. 2021)."""

    features: int = option(64, doc="m: random features per head.", minimum=1)
    seed: int = option(0, doc="Seed of the random features.", minimum=0)

    def problems(self, spec):
        yield from no_score_positions("performer", spec)


def orthogonal_features(features: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(features, width): stacked orthogonal blocks (QR of Gaussian matrices), rows rescaled to
    the norms of Gaussian vectors, as in the paper's ORF construction."""
    blocks = []
    for _ in range(-(-features // width)):
        q, _ = np.linalg.qr(rng.standard_normal((width, width)))
        blocks.append(q.T)
    matrix = np.concatenate(blocks)[:features]
    return matrix * np.linalg.norm(rng.standard_normal((features, width)), axis=1)[:, None]


def favor_features(ctx, x, is_query: bool, matrix: np.ndarray):
    dh = ctx.type_of(x).shape[-1]
    with ctx.at("favor"):
        x = ctx.op("mul", x, ctx.constant(np.float32(dh ** -0.25)))
        projected = ctx.op("matmul", x, ctx.constant(matrix.T.astype(np.float32)))  # (B,H,S,m)
        half_norm = ctx.op("mul", ctx.op("reduce_sum", ctx.op("mul", x, x), axes=(-1,)), ctx.constant(0.5))
        stabiliser = ctx.op("reduce_max", projected, axes=(-1,) if is_query else (2, 3))
        # exp(p - |x|²/2 - stabiliser) / √m, with every per-row term summed first so the (B,H,S,m)
        # features take one subtraction and the exponential
        shift = ctx.op("add", ctx.op("add", half_norm, stabiliser), ctx.constant(np.float32(0.5 * np.log(len(matrix)))))
        return ctx.op("exp", ctx.op("sub", projected, shift), label="QueryFeatures" if is_query else "KeyFeatures")


def build_performer(ctx, options: PerformerOptions, spec, site):
    rng = ctx.rng(options.seed)
    matrix = orthogonal_features(options.features, spec.model.dh, rng)
    return attend_linear(ctx, spec, site, lambda c, x, q: favor_features(c, x, q, matrix), 0.0)


ATTENTION.register("performer", PerformerOptions, build_performer)
