"""Attention kind `block_local`: local 1-D block attention of the Image Transformer (Parmar et al.
2018). The sequence (an image in raster-scan order) is cut into query blocks of `block` positions;
each block sees itself and the `memory_blocks` blocks before it (and after it, or `after` blocks, in
bidirectional stacks). In decoders the causal mask keeps generation autoregressive within the block.
With `wrap` (Hugging Face's Reformer encoders) the neighbours roll around the sequence's ends: the
first block's blocks before it are the last ones; that layout depends on the input's length, so it is
an additive bias made in the graph (tfcompiler.ir.ops.wrapped_blocks) over dense attention, not a
static pattern.
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
    COMPUTES = ("query blocks see their own, `memory_blocks` blocks before and (bidirectional) `after` blocks after; "
                "with `wrap` rolled round the sequence's ends, as Hugging Face's Reformer encoders take them")
    LOWERING = "banded blocks; with `wrap` dense attention under an in-graph block bias (`wrapped_blocks_bias`)"
    left_padding_shifts: ClassVar[str] = "its blocks start at multiples of `block` from the first column"

    block: int = option(doc="Query block length (positions, in raster-scan order).",
                        minimum=1, shrink=cap(2), positions=True)
    memory_blocks: int = option(1, doc="Neighbouring blocks each query block sees before it, and after it "
                                "unless `after` says otherwise (bidirectional stacks).", minimum=0)
    after: int | None = option(None, doc="Blocks after its own a query block sees in a bidirectional stack "
                               "(Hugging Face's local_num_chunks_after). Default: memory_blocks.", minimum=0)
    wrap: bool = option(False, doc="The neighbouring blocks roll around the sequence's ends, as Hugging Face's "
                        "Reformer takes them: the first block sees the last ones as its blocks before, a block "
                        "reached by two shifts (a sequence of few blocks) counts twice, a shift of the whole "
                        "block count or more is none. Bidirectional stacks only.")
    length_multiple: int | None = option(None, doc="With wrap: the blocks counted as if the sequence were padded "
                                         "to a multiple of this many positions (a multiple of block), as Hugging "
                                         "Face pads a Reformer's input to the least common multiple of its layers' "
                                         "chunk lengths: the wrapped blocks of padding have no keys. Default: block.",
                                         minimum=1)

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if self.length_multiple is not None and (not self.wrap or self.length_multiple % self.block):
            yield (f"length_multiple {self.length_multiple} must be a multiple of block {self.block}, with wrap "
                   "(without it blocks of padding change nothing)")
        if self.wrap and where.stack == "decoder":
            yield ("wrap is for bidirectional stacks: a causal query's wrapped blocks would depend on the input's "
                   "length, so no step could be computed from a cache")


def build_block_local(ctx, options: BlockLocalOptions, spec, site):
    after = options.memory_blocks if options.after is None else options.after
    if options.wrap:
        def wrapped(ctx, query, key):
            return ctx.op("wrapped_blocks_bias", query, key, block=options.block, before=options.memory_blocks,
                          after=after, multiple=options.length_multiple or options.block, label="WrappedBlocks")
        return build_multi_head(ctx, options, spec, site, mask=wrapped)
    nb = -(-spec.model.max_length // options.block)
    a, b = np.arange(nb)[:, None], np.arange(nb)[None, :]
    ahead = 0 if site.causal else after
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
    "block_local_two_before_one_after": """
topology: encoder
block: {attention: {kind: block_local, block: 3, memory_blocks: 2, after: 1}}
encoder: {layers: 2}
""",
    "reformer_local_encoder_wrapped": """
topology: encoder
block: {attention: {kind: block_local, block: 3, memory_blocks: 1, after: 1, wrap: true}}
encoder: {layers: 2}
""",
    "reformer_local_encoder_padded_to_lcm": """
topology: encoder
block: {attention: {kind: block_local, block: 2, memory_blocks: 1, after: 0, wrap: true, length_multiple: 8}}
encoder: {layers: 2}
""",
})
