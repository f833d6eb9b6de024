"""Positional scheme `window_offset` (compressive-transformer-pytorch): e_ab = q_a·(k_b + P_h[r])/√d with
r = clip(b - a + segment - 1, 0, length - 1), a the query's place in the segment, b the key's in the window."""
from __future__ import annotations

import numpy as np

from ..registry import POSITIONS
from .scheme import Scheme


@POSITIONS.register("window_offset")
class WindowOffset(Scheme):
    def attend(self, ref, options, logits, site):
        s, t = logits.q.shape[2], logits.k.shape[2]
        rows = np.clip(np.arange(t)[None, :] - np.arange(s)[:, None] + options.segment - 1, 0, options.length - 1)
        keys = ref.w[f"{site.name}.relative.key.weight"][:, rows]  # (H, S, T, d)
        logits.bias = logits.bias + logits.scale * np.einsum("bhid,hijd->bhij", logits.q, keys)
