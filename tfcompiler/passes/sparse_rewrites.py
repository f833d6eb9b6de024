"""The sparsity pass's rewrites as data: for each static pattern type (tfcompiler.ir.patterns), the
ops that compute it without the dense (S, T) scores, tried in order. Each :class:`Rewrite` has a
match function, which returns the new op's attributes or the reason it does not apply, and a note
for --explain; tfcompiler.passes.sparsify_attention dispatches on the pattern's type.

- banded blocks (banded_attention): a bounded reach (windows, 2-D local blocks, block layouts near
  the diagonal), global tokens as dense rows and extra columns;
- gathered key blocks (block_sparse_attention): a block layout whose rows list few key blocks
  (BigBird's window, global and random blocks), gathered by a constant index;
- block summaries (block_summary_attention): the Sparse Transformer's fixed pattern;
- strided columns (banded_attention with stride_columns): its strided pattern.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir.graph import Graph
from ..ir.ops.block_sparse import layout_table
from ..ir.patterns import Blocks, Fixed, Local2D, Pattern, Strided, Window, WithGlobal
from .matching import Match

REPORT_LENGTH = 4096  # the length --explain quotes savings at
# Wide windows are cut into blocks of at most this many positions: a block of the window's own
# width would attend up to twice the window and pad short inputs to a whole window.
LARGEST_BLOCK = 256


@dataclass(frozen=True)
class Rewrite:
    """An op that computes an attention's pattern sparsely: ``match(graph, node, pattern)`` binds
    ``attrs`` (the attention's attributes to update) and ``keys`` (keys per query at REPORT_LENGTH)
    or fails with a reason; ``describe(pattern, match)`` says what the rewrite made."""

    name: str
    op: str
    label: str
    match: Callable[[Graph, int, Pattern], Match]
    describe: Callable[[Pattern, Match], str]


def band_blocks(back: int, ahead: int) -> tuple[int, int, int]:
    """(block, back_blocks, ahead_blocks) covering a reach of `back` and `ahead` positions with the
    fewest keys per query, preferring larger blocks (fewer ops) among equals."""
    reach = max(back, ahead, 1)
    sizes = [reach] if reach <= LARGEST_BLOCK else [LARGEST_BLOCK // 4, LARGEST_BLOCK // 2, LARGEST_BLOCK]

    def keys(block):
        return (math.ceil(back / block) + math.ceil(ahead / block) + 1) * block

    block = min(sizes, key=lambda b: (keys(b), -b))
    return block, math.ceil(back / block), math.ceil(ahead / block)


def saving(keys: int) -> str:
    return (f"{keys} keys per query instead of all: at {REPORT_LENGTH} tokens {REPORT_LENGTH / keys:.1f}x fewer "
            f"score FLOPs and less score memory")


def self_attention(graph: Graph, node: int) -> Match:
    """Queries and keys of one length, and no bias other than key padding."""
    q, k, _, *bias = (graph.type_of(v) for v in graph.inputs_of(node))
    if q.shape[2] != k.shape[2]:
        return Match.fail("keys and queries differ in length")
    if bias and tuple(bias[0].shape[1:3]) != (1, 1):
        return Match.fail("it has a bias other than key padding")
    return Match()


def _band_of(graph: Graph, node: int, band: Pattern) -> tuple[int, int, int]:
    back, ahead = band.reach()
    return band_blocks(back, 0 if graph.op(node).attrs["causal"] else ahead)


def match_band(graph: Graph, node: int, pattern: Pattern) -> Match:
    band, global_tokens = pattern.without_global()
    if band.counted():
        return Match.fail("it counts some key blocks more than once")
    if getattr(band, "trailing", 0) and graph.op(node).attrs["causal"]:
        return Match.fail("causal trailing global blocks")
    if band.reach() is None:
        return Match.fail("its reach is unbounded: strides or random blocks")
    fits = self_attention(graph, node)
    if not fits:
        return fits
    block, back_blocks, ahead_blocks = _band_of(graph, node, band)
    return Match.of(attrs=dict(pattern=band, block=block, back_blocks=back_blocks, ahead_blocks=ahead_blocks,
                               global_tokens=global_tokens),
                    keys=(back_blocks + ahead_blocks + 1) * block + global_tokens)


def match_gather(graph: Graph, node: int, pattern: Blocks) -> Match:
    counts = np.asarray(pattern.layout, np.int64)
    layout = counts > 0
    if pattern.reach() is not None and not pattern.counted():
        block, back_blocks, ahead_blocks = _band_of(graph, node, pattern)
        if len(layout_table(pattern.layout)[0]) * pattern.block >= (back_blocks + ahead_blocks + 1) * block:
            return Match.fail("the band around the diagonal holds fewer keys per query")
    partial = np.flatnonzero(~(counts == 1).all(axis=1))  # dense rows see every key block once
    dense_rows = int(partial[0]) if len(partial) else len(layout)
    sparse = counts.copy()
    sparse[:dense_rows] = False  # those rows are computed densely
    if pattern.trailing:  # the input's last blocks are gathered and computed densely wherever it ends
        last = sparse[:, -pattern.trailing:]
        last[last == 1] = 0  # a block listed more than once stays listed: gathered as often
        sparse[-pattern.trailing:] = 0
    table = layout_table(sparse)
    if not sparse.any() or len(table[0]) * 2 > len(layout):
        return Match.fail("its rows list over half the key blocks")
    if pattern.trailing and graph.op(node).attrs["causal"]:  # dense rows are top-left causal only
        return Match.fail("causal trailing global blocks")
    fits = self_attention(graph, node)
    if not fits:
        return fits
    return Match.of(attrs=dict(table=table, dense_rows=dense_rows),
                    keys=(len(table[0]) + pattern.trailing) * pattern.block)


def match_strided(graph: Graph, node: int, pattern: Strided) -> Match:
    fits = self_attention(graph, node)
    if not fits:
        return fits
    l, ahead = pattern.stride, 0 if graph.op(node).attrs["causal"] else 1
    return Match.of(attrs=dict(pattern=Window(back=l - 1, ahead=ahead * (l - 1)), block=l, back_blocks=1,
                               ahead_blocks=ahead, global_tokens=0, stride_columns=l),
                    keys=(ahead + 2) * l + REPORT_LENGTH // l)


def match_summary(graph: Graph, node: int, pattern: Fixed) -> Match:
    fits = self_attention(graph, node)
    if not fits:
        return fits
    return Match.of(attrs=dict(stride=pattern.stride, summary=pattern.summary),
                    keys=pattern.stride + REPORT_LENGTH // pattern.stride * pattern.summary)


def describe_band(pattern, match: Match) -> str:
    attrs = match.bound["attrs"]
    tokens = attrs["global_tokens"]
    extra = f" + {tokens} global rows and columns" if tokens else ""
    return f"{pattern.brief()} -> banded blocks of {attrs['block']}{extra}, {saving(match.bound['keys'])}"


def describe_gather(pattern: Blocks, match: Match) -> str:
    table, dense_rows, t = match.bound["attrs"]["table"], match.bound["attrs"]["dense_rows"], pattern.trailing
    last = f" and the input's last {t} wherever it ends" if t else ""
    rows = f"{dense_rows} leading" + (f" and {t} trailing" if t else "")
    return (f"{pattern.brief()} -> gathered key blocks: {len(table[0])} blocks of {pattern.block} per query "
            f"block by a constant index{last}, {rows} block(s) as dense rows, {saving(match.bound['keys'])}")


def describe_strided(pattern: Strided, match: Match) -> str:
    return (f"{pattern.brief()} -> banded blocks of {pattern.stride} + the strided keys of every other block, "
            f"{saving(match.bound['keys'])}")


def describe_summary(pattern: Fixed, match: Match) -> str:
    return (f"{pattern.brief()} -> own blocks of {pattern.stride} + every block's {pattern.summary} summary "
            f"keys, {saving(match.bound['keys'])}")


BANDED = Rewrite("banded blocks", "banded_attention", "BandedAttention", match_band, describe_band)
GATHERED = Rewrite("gathered key blocks", "block_sparse_attention", "BlockSparseAttention", match_gather,
                   describe_gather)
STRIDED = Rewrite("strided columns", "banded_attention", "BandedAttention", match_strided, describe_strided)
SUMMARY = Rewrite("block summaries", "block_summary_attention", "BlockSummaryAttention", match_summary,
                  describe_summary)

# pattern type -> the rewrites to try, in order (a block layout gathers when that keeps fewer keys)
REWRITES: dict[type, tuple[Rewrite, ...]] = {
    Window: (BANDED,), Local2D: (BANDED,), WithGlobal: (BANDED,), Blocks: (GATHERED, BANDED),
    Strided: (STRIDED,), Fixed: (SUMMARY,),
}
