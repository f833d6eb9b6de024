"""Positional scheme `shaw` (Shaw et al. 2018): e_ij = q_i·(k_j + a^K_ij)/√d and
z_i = Σ_j α_ij (v_j + a^V_ij), with a_ij = w[clip(j - i, -k, k)] learned per layer."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


@POSITIONS.register("shaw")
class Shaw(Scheme):
    def attend(self, ref, options, logits, site):
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        clipped = np.clip(j - i, -options.max_distance, options.max_distance) + options.max_distance
        key_vectors = ref.w[f"{site.name}.relative.key.weight"][clipped]  # (S, T, d)
        logits.bias = logits.bias + logits.scale * np.einsum("bhid,ijd->bhij", logits.q, key_vectors)
        if options.value_term:
            value_vectors = ref.w[f"{site.name}.relative.value.weight"][clipped]
            logits.value_term = lambda probs: np.einsum("bhij,ijd->bhid", probs, value_vectors)
