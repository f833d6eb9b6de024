"""Attention kind `bigbird` (Zaheer et al. 2020): blocks of b tokens; a query block sees the
`window_blocks` blocks around it, the global blocks (leading ones, and the input's last
`trailing_global_blocks`, which also see everything) and `random_blocks` random blocks.

The random blocks are drawn at compile time and stored only inside the ONNX layout constant, so this
file re-derives them from the algorithm tfcompiler documents (builders/attention/bigbird.py's
docstring and `seed` option): over the blocks of model.max_length, row by row, the blocks the row
does not see yet (in a decoder only blocks up to its own) are sampled without replacement by
``numpy.random.default_rng([seed, crc32(layer path)]).choice``.

With `layout: first_block` or `given` the rows that are not global (neither the leading
`global_blocks` nor the input's trailing ones) have `random_blocks` more slots, each gathering block 0
(Hugging Face's BigBird in eval mode) or the block `random_layout` names for that row; a block in k
slots counts k more times in the row's softmax (a log k on its scores, as if its keys were repeated).
The input's trailing rows see every block once; a trailing block that a row lists neither in its
window nor in a slot counts once.
"""
from __future__ import annotations

import zlib

import numpy as np

from ..formulas import relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead


def block_layout(options, max_length: int, causal: bool, layer: str):
    """bool (blocks, blocks) over max_length: query block a sees key block b (the window, the
    global blocks where max_length puts them and, seeded, the random blocks)."""
    count = -(-max_length // options.block)
    rows, cols = np.indices((count, count))
    seen = np.abs(rows - cols) <= options.window_blocks // 2
    seen |= (np.minimum(rows, cols) < options.global_blocks)
    seen |= np.maximum(rows, cols) >= count - options.trailing_global_blocks  # where max_length puts them
    if options.layout != "seeded":
        return seen
    draw = np.random.default_rng([options.seed, zlib.crc32(layer.encode())])
    for a in range(count):
        candidates = [b for b in range(count) if not seen[a, b] and (b <= a or not causal)]
        if candidates and options.random_blocks:
            seen[a, draw.choice(candidates, size=min(options.random_blocks, len(candidates)), replace=False)] = True
    return seen


@ATTENTION.register("bigbird")
class BigBird(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        a, b = i // options.block, j // options.block
        last = (t - 1) // options.block - options.trailing_global_blocks  # the last block that is not global
        layout = block_layout(options, ref.spec.model.max_length, site.causal, site.name)
        if options.layout == "seeded":
            return layout[a, b] | (a > last) | (b > last)
        slots = np.zeros_like(layout, np.int64)  # random slots per (query block, key block)
        for row in range(options.global_blocks, len(layout) - options.trailing_global_blocks):
            for key in [0] * options.random_blocks if options.layout == "first_block" else options.random_layout[row]:
                slots[row, key] += key <= row or not site.causal
        counts = layout[a, b] + slots[a, b]
        # the input's trailing rows see every block once; its trailing blocks count as listed, else once
        return np.where(a > last, 1, np.where(b > last, np.maximum(counts, 1), counts))
