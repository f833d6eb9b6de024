"""Positional scheme `music`: the Music Transformer's relative attention (Huang et al. 2019),
S_rel[i, j] = q_i · E_r[h, i - j] for past keys, E_r learned per head up to max_distance."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


@POSITIONS.register("music")
class Music(Scheme):
    def attend(self, ref, options, logits, site):
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        table = ref.w[f"{site.name}.relative.weight"]
        distance = np.clip(i - j, 0, table.shape[1] - 1)
        logits.bias = logits.bias + logits.scale * np.einsum("bhid,hijd->bhij", logits.q, table[:, distance])
