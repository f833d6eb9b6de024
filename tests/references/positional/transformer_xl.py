"""Positional scheme `transformer_xl` (Dai et al. 2019): scores (q_i + u)·k_j + (q_i + v)·W_R R_{i-j},
R the sinusoids [sin | cos] of the distance, u and v learned per layer; or (form: learned, labml-nn)
(q_i + u)·k_j + q_i·R_{i-j} + S_{i-j}, R and S learned rows per distance 1 - L ... L + memory - 1."""
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


def learned_term(ref, name: str, q, distances, base: float):
    """q·R_d + S_d (B, H, S, T), the table's first row holding distance 1 - L (past its ends, the edge rows)."""
    length = ref.spec.model.max_length
    memory = ref.spec.decoder.memory if ref.spec.decoder is not None else 0
    rows = np.clip(distances, 1 - length, length + memory - 1) + length - 1
    keys, biases = ref.w[f"{name}.relative.key.weight"][rows], ref.w[f"{name}.relative.key_bias"][rows]
    return np.einsum("bhid,ijhd->bhij", q, keys) + biases.transpose(2, 0, 1)


@POSITIONS.register("transformer_xl")
class TransformerXL(Scheme):
    def attend(self, ref, options, logits, site):
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        term = learned_term if options.form == "learned" else relative_term
        logits.bias = logits.bias + logits.scale * term(ref, site.name, logits.q, i - j, options.base)
        logits.q = logits.q + ref.w[f"{site.name}.relative.content_bias"]
