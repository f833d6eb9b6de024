"""Static sparse attention patterns: which key j a query i may see, as an attribute of the IR's
`attention` op. A pattern is written once, as a predicate over integer position grids through a
small array namespace, and runs twice: on NumPy (the interpreter, the passes' reference) and on
ONNX ops (the dense lowering's mask). Query positions are aligned to the end of the keys
(i = row + T - S), as for every mask and relative scheme.

`reach()` says how far a query looks back and ahead (None: unbounded, e.g. global tokens or a
stride): the sparsity pass turns a bounded pattern into banded blocks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class NumpyGrid:
    """The namespace on NumPy arrays; `length` is the key count T (patterns placed relative to the
    input's end read it)."""

    def __init__(self, length: int | None = None):
        self.length = length

    def mod(self, a, n):
        return np.mod(a, n)

    def floordiv(self, a, n):  # positions are never negative where this is used
        return a // n

    def abs(self, a):
        return np.abs(a)

    def sub(self, a, b):
        return a - b

    def le(self, a, b):
        return a <= b

    def lt(self, a, b):
        return a < b

    def eq(self, a, b):
        return a == b

    def and_(self, a, b):
        return a & b

    def or_(self, a, b):
        return a | b

    def table(self, table: np.ndarray, rows, cols):
        """table[rows, cols] for a constant bool table, rows and cols broadcasting; outside = False."""
        return self.values(table.astype(bool), rows, cols)

    def values(self, table: np.ndarray, rows, cols):
        """table[rows, cols] for a constant table of any dtype; outside = 0."""
        r = np.clip(rows, 0, table.shape[0] - 1)
        c = np.clip(cols, 0, table.shape[1] - 1)
        inside = (rows >= 0) & (rows < table.shape[0]) & (cols >= 0) & (cols < table.shape[1])
        return np.where(inside, table[r, c], table.dtype.type(0))

    def where(self, condition, a, b):
        return np.where(condition, a, b)


def _grid(s: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Query positions (S, 1), aligned to the end of the keys, and key positions (1, T)."""
    return np.arange(t - s, t)[:, None], np.arange(t)[None, :]


@dataclass(frozen=True)
class Pattern:
    def allowed(self, xp, i, j):
        raise NotImplementedError

    def reach(self) -> tuple[int, int] | None:
        """(back, ahead): the largest i - j and j - i it allows, or None when unbounded."""
        return None

    def distance_bound(self) -> int | None:
        """The largest i - j it allows where whether i sees j depends on i - j alone, else None: a
        causal query then needs only that many keys behind it (a KV cache keeps no more)."""
        return None

    def counted(self) -> bool:
        """Whether some key counts more than once in a query's softmax (see `repeats`)."""
        return False

    def repeats(self, xp, i, j):
        """float32 log of how many times query i counts key j in its softmax, added to the scores
        where the pattern allows the key; None: every key it sees counts once (all but a Blocks
        layout that lists a block more than once)."""
        return None

    def mask(self, s: int, t: int) -> np.ndarray:
        """The bool (S, T) mask on NumPy."""
        i, j = _grid(s, t)
        return np.broadcast_to(self.allowed(NumpyGrid(t), i, j), (s, t))

    def score_bias(self, s: int, t: int) -> np.ndarray | None:
        """`repeats` on NumPy: float (S, T), or None."""
        i, j = _grid(s, t)
        counted = self.repeats(NumpyGrid(t), i, j)
        return None if counted is None else np.broadcast_to(counted, (s, t))

    def without_global(self) -> tuple["Pattern", int]:
        """(the pattern under its global tokens, their count): (self, 0) but for WithGlobal."""
        return self, 0

    def brief(self) -> str:
        """The pattern in a line, for --explain."""
        return str(self)


@dataclass(frozen=True)
class Window(Pattern):
    """|i - j| within [-ahead, back], on every `dilation`-th key (Longformer's dilated window)."""

    back: int
    ahead: int
    dilation: int = 1

    def allowed(self, xp, i, j):
        d = xp.sub(i, j)
        inside = xp.and_(xp.le(d, self.back), xp.le(-self.ahead, d))
        return inside if self.dilation == 1 else xp.and_(inside, xp.eq(xp.mod(d, self.dilation), 0))

    def reach(self):
        return (self.back, self.ahead)

    def distance_bound(self):
        return self.back


@dataclass(frozen=True)
class Strided(Pattern):
    """Sparse Transformer, strided (Child et al. 2019): the last `stride` positions, and every
    position a multiple of `stride` away (both heads' sets in one)."""

    stride: int

    def allowed(self, xp, i, j):
        d = xp.abs(xp.sub(i, j))
        return xp.or_(xp.lt(d, self.stride), xp.eq(xp.mod(d, self.stride), 0))


@dataclass(frozen=True)
class Fixed(Pattern):
    """Sparse Transformer, fixed: the query's own block of `stride`, and the last `summary`
    positions of every block."""

    stride: int
    summary: int

    def allowed(self, xp, i, j):
        same_block = xp.eq(xp.floordiv(i, self.stride), xp.floordiv(j, self.stride))
        return xp.or_(same_block, xp.le(self.stride - self.summary, xp.mod(j, self.stride)))


@dataclass(frozen=True)
class Local2D(Pattern):
    """Image Transformer local 2-D attention (Parmar et al. 2018) over raster-scan positions, `width`
    per image row: the image is cut into query blocks of `rows` x `cols`; a query sees the keys of
    its block widened by `above` rows above, `below` rows below and `side` columns on each side."""

    width: int
    rows: int
    cols: int
    above: int
    below: int
    side: int

    def allowed(self, xp, i, j):
        ri, ci, rj, cj = (xp.floordiv(i, self.width), xp.mod(i, self.width),
                          xp.floordiv(j, self.width), xp.mod(j, self.width))
        top, left = xp.sub(ri, xp.mod(ri, self.rows)), xp.sub(ci, xp.mod(ci, self.cols))  # the block's corner
        rows = xp.and_(xp.le(xp.sub(top, self.above), rj), xp.le(rj, xp.sub(top, 1 - self.rows - self.below)))
        cols = xp.and_(xp.le(xp.sub(left, self.side), cj), xp.le(cj, xp.sub(left, 1 - self.cols - self.side)))
        return xp.and_(rows, cols)

    def reach(self):
        def across(rows):
            return rows * self.width + self.cols - 1 + self.side
        return (across(self.rows - 1 + self.above), across(self.rows - 1 + self.below))


@dataclass(frozen=True)
class WithGlobal(Pattern):
    """A base pattern plus `tokens` leading global tokens that see and are seen by every token
    (Longformer, BigBird-ITC, Star's relay)."""

    base: Pattern
    tokens: int

    def allowed(self, xp, i, j):
        glob = xp.or_(xp.lt(i, self.tokens), xp.lt(j, self.tokens))
        return xp.or_(self.base.allowed(xp, i, j), glob)

    def without_global(self):
        return self.base, self.tokens


@dataclass(frozen=True)
class Blocks(Pattern):
    """A block layout: query block a sees key block b when layout[a][b] (BigBird, block-local
    attention). The layout covers max_length; its rows and columns are tuples so the pattern is a
    hashable constant. The last `trailing` blocks of the input, however long it is, are global on
    top of the layout: they see and are seen by every block (Hugging Face's BigBird).

    An entry may also count: n > 1 counts key block b n times in query block a's softmax (adds log n
    to its scores), as a layout that gathers one block in several slots does (Hugging Face's BigBird
    in eval mode gathers block 0 in place of every random block). A trailing row counts every block
    once; a trailing block a row lists counts as listed."""

    block: int
    layout: tuple[tuple[bool | int, ...], ...]
    trailing: int = 0

    def brief(self) -> str:  # by its size, not its table
        return f"Blocks(block={self.block}, {len(self.layout)}x{len(self.layout)} layout)"

    def allowed(self, xp, i, j):
        table = np.asarray(self.layout, bool)
        a, b = xp.floordiv(i, self.block), xp.floordiv(j, self.block)
        allowed = xp.table(table, a, b)
        if not self.trailing:
            return allowed
        first = self._first_trailing(xp)
        return xp.or_(allowed, xp.or_(xp.le(first, a), xp.le(first, b)))

    def _first_trailing(self, xp):
        return xp.sub(xp.floordiv(xp.sub(xp.length, 1), self.block), self.trailing - 1)

    def counted(self) -> bool:
        return bool(np.asarray(self.layout, np.int64).max(initial=0) > 1)

    def repeats(self, xp, i, j):
        if not self.counted():
            return None
        logs = np.log(np.maximum(np.asarray(self.layout, np.int64), 1)).astype(np.float32)
        a = xp.floordiv(i, self.block)
        counted = xp.values(logs, a, xp.floordiv(j, self.block))
        if not self.trailing:
            return counted
        return xp.where(xp.le(self._first_trailing(xp), a), 0.0, counted)

    def reach(self):
        if self.trailing:
            return None
        table = np.asarray(self.layout, bool)
        a, b = np.nonzero(table)
        offsets = a - b
        return ((int(offsets.max()) + 1) * self.block - 1, (int(-offsets.min()) + 1) * self.block - 1) \
            if len(offsets) and np.abs(offsets).max() < table.shape[0] - 1 else None
