"""Positional scheme `transformer_xl` (Dai et al. 2019): scores (q_i + u)·k_j + (q_i + v)·W_R R_{i-j},
R the sinusoids [sin | cos] of the distance, u and v learned per layer."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


def relative_term(ref, name: str, q, distances, base: float):
    """(q + v)·W_R R(distance) (B, H, S, T) for distances (S, T)."""
    m = ref.spec.model
    half = np.arange(0, m.width, 2) / m.width
    angles = distances[..., None] / base ** half
    r = np.concatenate([np.sin(angles), np.cos(angles)], -1) @ ref.w[f"{name}.relative.position.weight"]
    r = r.reshape(distances.shape + (m.heads, -1))
    return np.einsum("bhid,ijhd->bhij", q + ref.w[f"{name}.relative.position_bias"], r)


@POSITIONS.register("transformer_xl")
class TransformerXL(Scheme):
    def attend(self, ref, options, logits, site):
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        logits.bias = logits.bias + logits.scale * relative_term(ref, site.name, logits.q, i - j, options.base)
        logits.q = logits.q + ref.w[f"{site.name}.relative.content_bias"]
