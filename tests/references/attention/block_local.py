"""Attention kind `block_local`: the Image Transformer's local 1-D attention (Parmar et al. 2018) —
a query sees its block, `memory_blocks` blocks before it and (bidirectional) `after` blocks after it
(default memory_blocks). With `wrap` (Hugging Face's Reformer) the blocks are counted round the ends:
of n = ⌈T / m⌉·m / block blocks (m = length_multiple, default block), block a sees a + k mod n for
each shift k in [-memory_blocks, after], a shift of n or more being none; a block seen by two shifts
is seen twice."""
from __future__ import annotations

import numpy as np

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("block_local")
class BlockLocal(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        a, b = i // options.block, j // options.block
        after = options.memory_blocks if getattr(options, "after", None) is None else options.after
        if not getattr(options, "wrap", False):
            return (b >= a - options.memory_blocks) & (b <= a + (0 if site.causal else after))
        multiple = getattr(options, "length_multiple", None) or options.block  # padded to a whole multiple
        n = -(-t // multiple) * multiple // options.block
        shifts = [k if abs(k) < n else 0 for k in range(-options.memory_blocks, after + 1)]
        return sum(((a + k) % n == b).astype(np.int64) for k in shifts)  # how often each key is seen
