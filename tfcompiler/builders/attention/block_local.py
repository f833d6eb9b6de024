"""Attention kind `block_local`: local 1-D block attention of the Image Transformer (Parmar et al.
2018). The sequence (an image in raster-scan order) is cut into query blocks of `block` positions;
each block sees itself and the `memory_blocks` blocks before it (and after it, in bidirectional
stacks). In decoders the causal mask keeps generation autoregressive within the block.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.patterns import Blocks
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import cap
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class BlockLocalOptions(MultiHeadOptions):
    """Query blocks attending their own and neighbouring memory blocks."""

    PAPER = "Image Transformer local 1-D (Parmar et al. 2018)"
    COMPUTES = "query blocks see their own and `memory_blocks` neighbouring blocks"
    LOWERING = "banded blocks"
    left_padding_shifts: ClassVar[str] = "its blocks start at multiples of `block` from the first column"

    block: int = option(doc="Query block length (positions, in raster-scan order).",
                        minimum=1, shrink=cap(2), positions=True)
    memory_blocks: int = option(1, doc="Neighbouring blocks each query block sees on each side.", minimum=0)


def build_block_local(ctx, options: BlockLocalOptions, spec, site):
    nb = -(-spec.model.max_length // options.block)
    a, b = np.arange(nb)[:, None], np.arange(nb)[None, :]
    ahead = 0 if site.causal else options.memory_blocks
    layout = (b <= a + ahead) & (b >= a - options.memory_blocks)
    pattern = Blocks(options.block, tuple(tuple(bool(x) for x in row) for row in layout))
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("block_local", BlockLocalOptions, build_block_local, examples={
    "image_transformer_local_1d": """
topology: decoder
block: {attention: {kind: block_local, block: 4, memory_blocks: 1}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
