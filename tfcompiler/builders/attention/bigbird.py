"""Attention kind `bigbird`: block-sparse attention of BigBird (Zaheer et al. 2020) — blocks of
`block` tokens; each query block sees the `window_blocks` blocks around it, the leading
`global_blocks` blocks (which also see everything), the input's last `trailing_global_blocks`
blocks (likewise global; Hugging Face's BigBird has one leading and one trailing), and
`random_blocks` other blocks.

The random blocks are drawn when the spec is compiled, from `seed` and the layer's path, over the
blocks of model.max_length, and recorded in the ONNX as a constant layout: the same spec and seed
give the same model. With a shorter input, random blocks past its end are simply absent.
(Hugging Face's BigBird draws no random blocks at all in eval mode.)
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.patterns import Blocks
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import cap
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class BigBirdOptions(MultiHeadOptions):
    """Window, global and random blocks."""

    PAPER = "Zaheer et al. 2020"
    COMPUTES = ("window, global (leading; trailing at the input's end, as Hugging Face's) and random blocks; the "
                "random layout drawn at compile time from `seed`")
    LOWERING = "key blocks gathered by a constant index + dense global rows"
    no_cache_because: ClassVar[str] = "its random blocks are drawn for the whole length: a row changes with it"

    block: int = option(64, doc="Block size b.", minimum=1, shrink=cap(2))
    window_blocks: int = option(3, doc="Blocks around the query block it sees (odd: centred).", minimum=1)
    global_blocks: int = option(1, doc="Leading blocks with global attention.", minimum=0)
    trailing_global_blocks: int = option(0, doc="The input's last blocks with global attention, wherever its length "
                                                "puts them (Hugging Face's BigBird: 1).", minimum=0)
    random_blocks: int = option(3, doc="Random key blocks per query block.", minimum=0)
    seed: int = option(0, doc="Seed of the random layout.", minimum=0)


def bigbird_layout(options: BigBirdOptions, max_length: int, causal: bool, salt: str) -> np.ndarray:
    """bool (nb, nb): query block a sees key block b."""
    nb = -(-max_length // options.block)
    a, b = np.arange(nb)[:, None], np.arange(nb)[None, :]
    half = options.window_blocks // 2
    # the trailing global blocks as they sit at max_length, so no random block falls there (the pattern
    # puts them at the end of every input)
    trailing = a >= nb - options.trailing_global_blocks
    layout = ((np.abs(a - b) <= half) | (a < options.global_blocks) | (b < options.global_blocks)
              | trailing | trailing.T)
    rng = np.random.default_rng([options.seed, zlib.crc32(salt.encode())])
    for row in range(nb):
        free = np.flatnonzero(~layout[row] & ((b[0] <= row) if causal else True))
        if len(free) and options.random_blocks:
            layout[row, rng.choice(free, size=min(options.random_blocks, len(free)), replace=False)] = True
    return layout


def build_bigbird(ctx, options: BigBirdOptions, spec, site):
    layout = bigbird_layout(options, spec.model.max_length, site.causal, ctx.origin)
    pattern = Blocks(options.block, tuple(tuple(bool(x) for x in row) for row in layout),
                     options.trailing_global_blocks)
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("bigbird", BigBirdOptions, build_bigbird, examples={
    "bigbird_encoder": """
topology: encoder
block: {attention: {kind: bigbird, block: 2, window_blocks: 3, global_blocks: 1, random_blocks: 2, seed: 7}}
encoder: {layers: 2}
""",
    "bigbird_first_and_last_global": """
topology: encoder
block: {attention: {kind: bigbird, block: 2, window_blocks: 3, global_blocks: 1, trailing_global_blocks: 1,
                    random_blocks: 2, seed: 7}}
encoder: {layers: 2}
""",
})
