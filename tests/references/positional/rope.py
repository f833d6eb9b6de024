"""Positional scheme `rope`: rotary positions (Su et al. 2021) in their complex form: feature pairs
are complex numbers z_i, multiplied by e^{i·m·θ_i}, θ_i = base^(-2i/R), for the token at position m.
Pairs are (x_2i, x_2i+1) when interleaved, (x_i, x_{i+R/2}) otherwise; features past R pass through.
Linear scaling divides positions by the factor (Chen et al. 2023); NTK scaling raises the base to
base·factor^(R/(R-2)) (bloc97 2023)."""
from __future__ import annotations

import numpy as np

from ..registry import POSITIONS
from .scheme import Scheme


def rotary(x, positions, rotary_dim, base=10000.0, interleaved=False, position_scale=1.0):
    r = rotary_dim
    theta = base ** (-np.arange(r // 2) * 2 / r)
    turn = np.exp(1j * np.outer(positions * position_scale, theta))  # (S, R/2)
    head, tail = x[..., :r], x[..., r:]
    if interleaved:
        z = (head[..., 0::2] + 1j * head[..., 1::2]) * turn
        out = np.stack([z.real, z.imag], axis=-1).reshape(head.shape)
    else:
        z = (head[..., : r // 2] + 1j * head[..., r // 2:]) * turn
        out = np.concatenate([z.real, z.imag], axis=-1)
    return np.concatenate([out, tail], axis=-1)


@POSITIONS.register("rope")
class Rope(Scheme):
    def attend(self, ref, options, logits, site):
        s, t = logits.q.shape[2], logits.k.shape[2]
        rotary_dim = options.rotary_dim or ref.spec.model.dh
        base = options.base * (options.factor ** (rotary_dim / (rotary_dim - 2)) if options.scaling == "ntk" else 1.0)
        scale_positions = 1 / options.factor if options.scaling == "linear" else 1.0
        args = (rotary_dim, base, options.layout == "interleaved", scale_positions)
        logits.q = rotary(logits.q, np.arange(t - s, t) if site.positions is None else site.positions, *args)
        logits.k = rotary(logits.k, np.arange(t), *args)
