"""Attention kind `block_local`: the Image Transformer's local 1-D attention (Parmar et al. 2018) —
a query sees its block and `memory_blocks` blocks before it (and after it, bidirectional)."""
from __future__ import annotations

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("block_local")
class BlockLocal(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        a, b = i // options.block, j // options.block
        return (b >= a - options.memory_blocks) & (b <= a + (0 if site.causal else options.memory_blocks))
