"""Attention kind `sparse_transformer` (Child et al. 2019): strided — i - j < l or l | i - j; fixed —
the same block of l, or a summary key (j mod l >= l - c)."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("sparse_transformer")
class SparseTransformer(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        d, l = i - j, options.stride
        if options.pattern == "strided":
            return (np.abs(d) < l) | (np.abs(d) % l == 0)
        return (i // l == j // l) | (j % l >= l - options.summary)
