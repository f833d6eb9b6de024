"""Attention kind `bigbird`: block-sparse attention of BigBird (Zaheer et al. 2020) — blocks of
`block` tokens; each query block sees the `window_blocks` blocks around it, the leading
`global_blocks` blocks (which also see everything), the input's last `trailing_global_blocks`
blocks (likewise global; Hugging Face's BigBird has one leading and one trailing), and
`random_blocks` other blocks.

Where the random blocks come from is `layout`:
- `seeded` (the default): drawn when the spec is compiled, from `seed` and the layer's path, over the
  blocks of model.max_length, and recorded in the ONNX as a constant layout: the same spec and seed
  give the same model. With a shorter input, random blocks past its end are simply absent.
- `first_block`: Hugging Face's BigBird in eval mode. Its `_bigbird_block_rand_mask(_with_head)`
  returns all zeros when not training, at every length (the paper's plans at 1024/3072/4096 tokens
  too), so each of the `random_blocks` slots of every row that is not global (rows 1 to n-2 of its
  n blocks) gathers block 0: block 0's keys count 1 + random_blocks times in that row's softmax
  (once as the global block, once per slot), which the layout keeps as a count.
- `given`: `random_layout` lists each query block's random key blocks (Hugging Face's `rand_attn`
  rows): a trained run's layout, or any other. A block listed n times counts n times, as in
  Hugging Face's gather. One layout per layer (per-layer ones in `overrides`), shared by the heads
  (Hugging Face's training draws one per head). A slot on a shorter input's last, global block
  counts as listed where the row's window does not reach that block (Hugging Face: once more).
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.patterns import Blocks
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import Rule, cap
from .multi_head import MultiHeadOptions, build_multi_head

LAYOUTS = ("seeded", "first_block", "given")
# A given layout has a row per block of max_length: at toy size (other blocks, another length) it is seeded.
SEEDED_AT_TOY_SIZE = Rule("seeded_at_toy_size", lambda value, section, scale: "seeded" if value == "given" else value)
DROPPED_AT_TOY_SIZE = Rule("dropped_at_toy_size", lambda value, section, scale: None)


@dataclass(frozen=True, kw_only=True)
class BigBirdOptions(MultiHeadOptions):
    """Window, global and random blocks."""

    PAPER = "Zaheer et al. 2020"
    COMPUTES = ("window, global (leading; trailing at the input's end, as Hugging Face's) and random blocks; the "
                "random layout drawn at compile time from `seed`, Hugging Face's eval-mode one (`first_block`) "
                "or given (`random_layout`)")
    LOWERING = "key blocks gathered by a constant index + dense global rows"
    no_cache_because: ClassVar[str] = "its random blocks are drawn for the whole length: a row changes with it"

    block: int = option(64, doc="Block size b.", minimum=1, shrink=cap(2))
    window_blocks: int = option(3, doc="Blocks around the query block it sees (odd: centred).", minimum=1)
    global_blocks: int = option(1, doc="Leading blocks with global attention.", minimum=0)
    trailing_global_blocks: int = option(0, doc="The input's last blocks with global attention, wherever its length "
                                                "puts them (Hugging Face's BigBird: 1).", minimum=0)
    random_blocks: int = option(3, doc="Random key blocks per query block.", minimum=0)
    seed: int = option(0, doc="Seed of the random layout.", minimum=0)
    layout: str = option("seeded", choices=LAYOUTS, shrink=SEEDED_AT_TOY_SIZE,
                         doc="Where the random blocks come from. seeded: drawn from `seed` when the spec compiles; "
                             "first_block: every random block is block 0 (Hugging Face's BigBird in eval mode: "
                             "block 0 counts 1 + random_blocks times in each row that is not global); given: "
                             "`random_layout`.")
    random_layout: list[list[int]] | None = option(
        None, shrink=DROPPED_AT_TOY_SIZE,
        doc="With `layout: given`, one row per block of model.max_length: the `random_blocks` key blocks "
            "(0-based) that query block draws, as Hugging Face's `rand_attn`. A block listed n times counts n "
            "times; rows of global blocks, and in a decoder blocks after the row, have no effect. Shared by "
            "the heads; per layer through `overrides`.")

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if (self.layout == "given") != (self.random_layout is not None):
            yield "random_layout goes with layout: given, and layout: given needs a random_layout"
            return
        if self.random_layout is None:
            return
        count = -(-spec.model.max_length // self.block)
        if len(self.random_layout) != count:
            yield (f"random_layout needs {count} rows, one per block of model.max_length {spec.model.max_length}, "
                   f"got {len(self.random_layout)}")
        for a, row in enumerate(self.random_layout):
            outside = [b for b in row if not 0 <= b < count]
            if len(row) != self.random_blocks or outside:
                yield (f"random_layout[{a}] must list random_blocks = {self.random_blocks} key blocks in "
                       f"[0, {count}), got {row}")
                return  # one row is enough to show the mistake


def bigbird_layout(options: BigBirdOptions, max_length: int, causal: bool, salt: str) -> np.ndarray:
    """(nb, nb): bool, query block a sees key block b (seeded); or int, how many times it counts it."""
    nb = -(-max_length // options.block)
    a, b = np.arange(nb)[:, None], np.arange(nb)[None, :]
    half = options.window_blocks // 2
    # the trailing global blocks as they sit at max_length, so no random block falls there (the pattern
    # puts them at the end of every input)
    trailing = a >= nb - options.trailing_global_blocks
    layout = ((np.abs(a - b) <= half) | (a < options.global_blocks) | (b < options.global_blocks)
              | trailing | trailing.T)
    if options.layout != "seeded":
        return with_random_slots(options, layout, causal)
    rng = np.random.default_rng([options.seed, zlib.crc32(salt.encode())])
    for row in range(nb):
        free = np.flatnonzero(~layout[row] & ((b[0] <= row) if causal else True))
        if len(free) and options.random_blocks:
            layout[row, rng.choice(free, size=min(options.random_blocks, len(free)), replace=False)] = True
    return layout


def with_random_slots(options: BigBirdOptions, layout: np.ndarray, causal: bool) -> np.ndarray:
    """int (nb, nb): the window and global layout plus one count per random slot of every row that is
    not global, at block 0 (first_block) or where random_layout puts it (given)."""
    nb = len(layout)
    counts = layout.astype(np.int64)
    for row in range(options.global_blocks, nb - options.trailing_global_blocks):
        drawn = [0] * options.random_blocks if options.layout == "first_block" else options.random_layout[row]
        for b in drawn:
            if b <= row or not causal:
                counts[row, b] += 1
    return counts


def build_bigbird(ctx, options: BigBirdOptions, spec, site):
    layout = bigbird_layout(options, spec.model.max_length, site.causal, ctx.origin)
    kind = bool if layout.dtype == bool else int  # a seeded layout stays a bool table
    pattern = Blocks(options.block, tuple(tuple(kind(x) for x in row) for row in layout),
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
    "bigbird_hugging_face_eval": """
topology: encoder
block: {attention: {kind: bigbird, block: 2, window_blocks: 3, global_blocks: 1, trailing_global_blocks: 1,
                    random_blocks: 2, layout: first_block}}
encoder: {layers: 2}
""",
    "bigbird_given_layout": """
topology: encoder
block: {attention: {kind: bigbird, block: 8, window_blocks: 1, global_blocks: 1, trailing_global_blocks: 1,
                    random_blocks: 2, layout: given, random_layout: [[0, 0], [3, 3], [0, 4], [1, 2], [4, 4]]}}
encoder: {layers: 2}
""",
})
