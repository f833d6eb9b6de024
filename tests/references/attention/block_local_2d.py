"""Attention kind `block_local_2d`: the Image Transformer's local 2-D attention (Parmar et al. 2018)
on a raster-scanned image `row_length` wide — a query sees its rectangle of `query_shape` widened by
the memory flange (rows above, and below when bidirectional; columns on each side)."""
from __future__ import annotations

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("block_local_2d")
class BlockLocal2D(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        (qh, qw), (hm, wm), width = options.query_shape, options.memory_flange, options.row_length
        ri, ci, rj, cj = i // width, i % width, j // width, j % width
        top, left = (ri // qh) * qh, (ci // qw) * qw
        below = 0 if site.causal else hm
        return (rj >= top - hm) & (rj < top + qh + below) & (cj >= left - wm) & (cj < left + qw + wm)
