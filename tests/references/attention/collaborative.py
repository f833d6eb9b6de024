"""Attention kind `collaborative` (Cordonnier et al. 2020): one shared query and key projection
W_Q, W_K of width D̃; head h scores (x W_Q ⊙ m_h)(x W_K)ᵀ with its learned mixing vector m_h."""
from __future__ import annotations

import numpy as np

from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("collaborative")
class Collaborative(MultiHead):
    def project(self, ref, x, memory, site):
        shared_q, shared_k = ref.linear(x, f"{site.name}.query"), ref.linear(memory, f"{site.name}.key")
        mixing = ref.w[f"{site.name}.mixing"]  # (H, D~)
        heads = ref.spec.model.heads
        q = shared_q[:, None] * mixing[None, :, None, :]
        return q, np.repeat(shared_k[:, None], heads, axis=1), ref.heads(memory, f"{site.name}.value")
