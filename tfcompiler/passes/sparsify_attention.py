"""Sparsity pass: an attention whose sparse pattern has a bounded reach (sliding and dilated
windows, block-local layouts) becomes banded attention, whose cost grows with n·w instead of n².

    attention(q, k, v, key_bias; pattern=Window(w, w))
      =>  banded_attention(q, k, v, key_bias; block=w, back_blocks=1, ahead_blocks=1)   (w <= 256)

Query block n (of `block` positions, the sequence padded to whole blocks inside the graph) attends
key blocks n - back_blocks .. n + ahead_blocks, with the pattern, causality, padding and the
sequence end masked there, so the result equals the dense masked attention exactly (checked by
evaluating the IR before and after). Global tokens (Longformer) ride along: their keys are extra
columns of every block and their queries dense rows. A block layout whose rows list few key blocks
(BigBird's window, global and random blocks) becomes block_sparse_attention: each query block
gathers its key blocks by a constant index, leading global blocks become dense rows. The Sparse
Transformer's fixed pattern becomes block_summary_attention: each query block attends its own
block and the summary positions of every block (one block at a time, so the scores stay linear in
the length); the strided pattern becomes banded blocks of the
stride plus, per query, the keys at its offset in every other block. Other unbounded patterns
(strides under global tokens) keep the dense masked form, and the note says so. Applies to self-attention with
no bias other than key padding.
"""
from __future__ import annotations

import math

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.ops.block_sparse import layout_table
from ..ir.patterns import Blocks, Fixed, Strided, Window, WithGlobal
from .base import Pass, PassResult

REPORT_LENGTH = 4096  # the length --explain quotes savings at
# Wide windows are cut into blocks of at most this many positions: a block of the window's own
# width would attend up to twice the window and pad short inputs to a whole window.
LARGEST_BLOCK = 256


def band_blocks(back: int, ahead: int) -> tuple[int, int, int]:
    """(block, back_blocks, ahead_blocks) covering a reach of `back` and `ahead` positions with the
    fewest keys per query, preferring larger blocks (fewer ops) among equals."""
    reach = max(back, ahead, 1)
    sizes = [reach] if reach <= LARGEST_BLOCK else [LARGEST_BLOCK // 4, LARGEST_BLOCK // 2, LARGEST_BLOCK]

    def keys(block):
        return (math.ceil(back / block) + math.ceil(ahead / block) + 1) * block

    block = min(sizes, key=lambda b: (keys(b), -b))
    return block, math.ceil(back / block), math.ceil(ahead / block)


def _short(pattern) -> str:
    """A pattern in a line: block layouts by their size, not their table."""
    if isinstance(pattern, Blocks):
        return f"Blocks(block={pattern.block}, {len(pattern.layout)}x{len(pattern.layout)} layout)"
    return str(pattern)


def _replace(graph: Graph, node, op_type: str, label: str, **attrs) -> None:
    """Swap the attention node for `op_type` on the same inputs, its attributes updated by `attrs`."""
    op = graph.op(node)
    new = graph.add1(op_type, graph.inputs_of(node), dict(op.attrs, **attrs), origin=op.origin, label=label)
    graph.replace_all_uses(Value(node, 0), new)
    graph.remove(node)


def _saving(keys: int) -> str:
    return (f"{keys} keys per query instead of all: at {REPORT_LENGTH} tokens {REPORT_LENGTH / keys:.1f}x fewer "
            f"score FLOPs and less score memory")


class SparsifyAttention(Pass):
    name = "sparsify_attention"
    description = "lower bounded sparse attention patterns to banded blocks"

    def run(self, graph: Graph) -> PassResult:
        notes, changed = [], False
        for node in list(graph.topological()):
            op = graph.op(node)
            if op.type != "attention" or op.attrs.get("pattern") is None:
                continue
            pattern, where = op.attrs["pattern"], op.origin or "?"
            band, global_tokens = (pattern.base, pattern.tokens) if isinstance(pattern, WithGlobal) else (pattern, 0)
            if isinstance(pattern, Strided) and not self._inputs_misfit(graph, node):
                notes.append(f"{where}: {self._stride(graph, node, pattern)}")
                changed = True
                continue
            if isinstance(pattern, Fixed) and not self._inputs_misfit(graph, node):
                notes.append(f"{where}: {self._summarise(graph, node, pattern)}")
                changed = True
                continue
            reason = self._why_not(graph, node, band)
            if isinstance(pattern, Blocks) and (reason.startswith("its reach") or self._gathering_pays(pattern, op)):
                note = self._gather_blocks(graph, node, pattern)
                if note:
                    notes.append(f"{where}: {note}")
                    changed = True
                    continue
            if reason:
                notes.append(f"{where}: {_short(pattern)} stays dense masked ({reason})")
                continue
            back, ahead = band.reach()
            ahead = 0 if op.attrs["causal"] else ahead
            block, back_blocks, ahead_blocks = band_blocks(back, ahead)
            _replace(graph, node, "banded_attention", "BandedAttention", pattern=band, block=block,
                     back_blocks=back_blocks, ahead_blocks=ahead_blocks, global_tokens=global_tokens)
            keys = (back_blocks + ahead_blocks + 1) * block + global_tokens
            extra = f" + {global_tokens} global rows and columns" if global_tokens else ""
            notes.append(f"{where}: {_short(pattern)} -> banded blocks of {block}{extra}, {_saving(keys)}")
            changed = True
        if not notes:
            notes.append("nothing to do: no attention has a sparse pattern")
        return PassResult(graph, changed, notes)

    @staticmethod
    def _gathering_pays(pattern: Blocks, op) -> bool:
        """Fewer keys per query gathering the layout's blocks than taking the band around them."""
        if pattern.reach() is None:
            return True
        back, ahead = pattern.reach()
        ahead = 0 if op.attrs["causal"] else ahead
        block, back_blocks, ahead_blocks = band_blocks(back, ahead)
        band = (back_blocks + ahead_blocks + 1) * block
        return len(layout_table(pattern.layout)[0]) * pattern.block < band

    def _gather_blocks(self, graph: Graph, node, pattern: Blocks) -> str:
        """Rewrite to block_sparse_attention when its rows list few key blocks; returns the note,
        or "" when the layout is too dense to gain (or the inputs do not fit)."""
        layout = np.asarray(pattern.layout, bool)
        partial = np.flatnonzero(~layout.all(axis=1))
        dense_rows = int(partial[0]) if len(partial) else len(layout)
        sparse = layout.copy()
        sparse[:dense_rows] = False  # those rows are computed densely
        if pattern.trailing:  # the input's last blocks are gathered and computed densely wherever it ends
            sparse[-pattern.trailing:], sparse[:, -pattern.trailing:] = False, False
        table = layout_table(sparse)
        causal_trailing = pattern.trailing and graph.op(node).attrs["causal"]  # dense rows are top-left causal only
        if not sparse.any() or len(table[0]) * 2 > len(layout) or causal_trailing or self._inputs_misfit(graph, node):
            return ""
        _replace(graph, node, "block_sparse_attention", "BlockSparseAttention", table=table, dense_rows=dense_rows)
        t = pattern.trailing
        last = f" and the input's last {t} wherever it ends" if t else ""
        rows = f"{dense_rows} leading" + (f" and {t} trailing" if t else "")
        return (f"{_short(pattern)} -> gathered key blocks: {len(table[0])} blocks of {pattern.block} per query "
                f"block by a constant index{last}, {rows} block(s) as dense rows, "
                f"{_saving((len(table[0]) + t) * pattern.block)}")

    @staticmethod
    def _stride(graph: Graph, node, pattern: Strided) -> str:
        """Rewrite the strided pattern to banded blocks of the stride plus strided key columns."""
        l, ahead = pattern.stride, 0 if graph.op(node).attrs["causal"] else 1
        _replace(graph, node, "banded_attention", "BandedAttention", pattern=Window(back=l - 1, ahead=ahead * (l - 1)),
                 block=l, back_blocks=1, ahead_blocks=ahead, global_tokens=0, stride_columns=l)
        return (f"{_short(pattern)} -> banded blocks of {l} + the strided keys of every other block, "
                f"{_saving((ahead + 2) * l + REPORT_LENGTH // l)}")

    @staticmethod
    def _summarise(graph: Graph, node, pattern: Fixed) -> str:
        """Rewrite the fixed pattern to block_summary_attention; returns the note."""
        _replace(graph, node, "block_summary_attention", "BlockSummaryAttention", stride=pattern.stride,
                 summary=pattern.summary)
        return (f"{_short(pattern)} -> own blocks of {pattern.stride} + every block's {pattern.summary} summary "
                f"keys, {_saving(pattern.stride + REPORT_LENGTH // pattern.stride * pattern.summary)}")

    @classmethod
    def _why_not(cls, graph: Graph, node, pattern) -> str:
        if isinstance(pattern, Blocks) and pattern.trailing and graph.op(node).attrs["causal"]:
            return "causal trailing global blocks"
        if pattern.reach() is None:
            return "its reach is unbounded: strides or random blocks"
        return cls._inputs_misfit(graph, node)

    @staticmethod
    def _inputs_misfit(graph: Graph, node) -> str:
        q, k, _, *bias = (graph.type_of(v) for v in graph.inputs_of(node))
        if q.shape[2] != k.shape[2]:
            return "keys and queries differ in length"
        if bias and tuple(bias[0].shape[1:3]) != (1, 1):
            return "it has a bias other than key padding"
        return ""
