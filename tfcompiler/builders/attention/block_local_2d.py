"""Attention kind `block_local_2d`: local 2-D block attention of the Image Transformer (Parmar et
al. 2018). Positions are an image in raster-scan order, `row_length` per image row (pixels times
channels when channels are positions); the image is cut into query blocks of `query_shape`
(rows, columns), and each block sees the keys of a memory block around it: `memory_flange` (rows,
columns) more rows above and columns on both sides, and rows below too in bidirectional stacks.
In decoders the causal mask keeps generation in raster order. The reach is bounded, so the
sparsity pass lowers it to banded blocks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Local2D
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import grid
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class BlockLocal2DOptions(MultiHeadOptions):
    """Query blocks of an image attending the memory block around them."""

    PAPER = "Image Transformer local 2-D"
    COMPUTES = "raster-scanned image cut into `query_shape` rectangles, each seeing its `memory_flange`"
    LOWERING = "banded blocks"
    left_padding_shifts: ClassVar[str] = "its 2-D blocks are counted from the first column"

    row_length: int = option(doc="Positions per image row (raster scan).", minimum=1, shrink=grid, positions=True)
    query_shape: list[int] = option(doc="Query block [rows, columns].", shrink=grid)
    memory_flange: list[int] = option(doc="Memory rows above (and below, bidirectional) and columns on "
                                            "each side of a query block.", shrink=grid)

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if len(self.query_shape) != 2 or min(self.query_shape) < 1:
            yield f"query_shape must be two positive numbers [rows, columns], got {list(self.query_shape)}"
        if len(self.memory_flange) != 2 or min(self.memory_flange) < 0:
            yield f"memory_flange must be two numbers >= 0 [rows, columns], got {list(self.memory_flange)}"
        elif len(self.query_shape) == 2 and self.query_shape[1] > self.row_length:  # ([2] is refused above)
            yield f"query_shape's {self.query_shape[1]} columns exceed row_length {self.row_length}"


def build_block_local_2d(ctx, options: BlockLocal2DOptions, spec, site):
    (rows, cols), (above, side) = options.query_shape, options.memory_flange
    pattern = Local2D(options.row_length, rows, cols, above, 0 if site.causal else above, side)
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("block_local_2d", BlockLocal2DOptions, build_block_local_2d, examples={
    "image_local_2d_encoder": """
topology: encoder
block: {attention: {kind: block_local_2d, row_length: 4, query_shape: [2, 2], memory_flange: [1, 1]}}
encoder: {layers: 2}
""",
    "image_local_2d_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: block_local_2d, row_length: 3, query_shape: [1, 2], memory_flange: [2, 1]}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
