"""The sparse-pattern namespace on ONNX: the same predicate that masks scores in the interpreter
(tfcompiler.ir.patterns) emitted as integer and boolean ONNX ops over Range position grids, so
patterns hold for any sequence length."""
from __future__ import annotations

import numpy as np

from .emit import Emitter


class OnnxGrid:
    def __init__(self, e: Emitter, length: str | None = None):
        self.e, self.length = e, length  # length: the scalar int64 key count

    def _int(self, x):
        return self.e.const(x) if isinstance(x, (int, np.integer)) else x

    def mod(self, a, n):
        return self.e.node1("Mod", self._int(a), self._int(n))

    def floordiv(self, a, n):
        return self.e.node1("Div", self._int(a), self._int(n))

    def abs(self, a):
        return self.e.node1("Abs", a)

    def sub(self, a, b):
        return self.e.node1("Sub", self._int(a), self._int(b))

    def le(self, a, b):
        return self.e.node1("LessOrEqual", self._int(a), self._int(b))

    def lt(self, a, b):
        return self.e.node1("Less", self._int(a), self._int(b))

    def eq(self, a, b):
        return self.e.node1("Equal", self._int(a), self._int(b))

    def and_(self, a, b):
        return self.e.node1("And", a, b)

    def or_(self, a, b):
        return self.e.node1("Or", a, b)

    def table(self, table: np.ndarray, rows, cols):
        """bool table[rows, cols] (any broadcasting shapes); outside the table = False."""
        return self._lookup(table.astype(bool), np.bool_, rows, cols, False)

    def values(self, table: np.ndarray, rows, cols):
        """float32 table[rows, cols]; outside the table = 0."""
        return self._lookup(table, np.float32, rows, cols, 0.0)

    def where(self, condition, a, b):
        def value(x):
            return self.e.const(float(x), np.float32) if isinstance(x, (int, float, np.number)) else x
        return self.e.node1("Where", condition, value(a), value(b))

    def _lookup(self, table: np.ndarray, dtype, rows, cols, outside):
        """Gather from the flattened table at clip(row)·n_cols + clip(col)."""
        n_rows, n_cols = table.shape
        r = self.e.node1("Clip", rows, self.e.const(0), self.e.const(n_rows - 1))
        c = self.e.node1("Clip", cols, self.e.const(0), self.e.const(n_cols - 1))
        flat = self.e.node1("Add", self.e.node1("Mul", r, self.e.const(n_cols)), c)
        picked = self.e.node1("Gather", self.e.const(table.reshape(-1).astype(dtype), dtype), flat, axis=0)
        inside = self.and_(self.and_(self.le(0, rows), self.lt(rows, n_rows)),
                           self.and_(self.le(0, cols), self.lt(cols, n_cols)))
        if dtype is np.bool_:
            return self.and_(picked, inside)
        return self.where(inside, picked, outside)


def _positions(e: Emitter, lengths) -> tuple[str, str, str]:
    """(i (S, 1), j (1, T), T) from ``lengths()``, the scalar int64 lengths S and T."""
    s, t = lengths()
    rows = e.node1("Add", e.node1("Range", e.const(0), s, e.const(1)), e.node1("Sub", t, s))
    i = e.node1("Unsqueeze", rows, e.const([1]))
    j = e.node1("Unsqueeze", e.node1("Range", e.const(0), t, e.const(1)), e.const([0]))
    return i, j, t


def pattern_allowed(e: Emitter, pattern, lengths, dims: tuple) -> str:
    """bool (S, T); ``lengths()`` emits the scalar int64 lengths; made once per pattern and pair of
    symbolic dims ``dims`` and shared by every layer."""
    key = ("pattern", pattern, dims)
    if key not in e.memo:
        i, j, t = _positions(e, lengths)
        e.memo[key] = pattern.allowed(OnnxGrid(e, t), i, j)
    return e.memo[key]


def pattern_repeats(e: Emitter, pattern, lengths, dims: tuple) -> str | None:
    """float32 (S, T): the pattern's `repeats` (log counts) added to the scores it allows, or None
    when it counts every key once; made once per pattern and pair of dims like `pattern_allowed`."""
    if not pattern.counted():
        return None
    key = ("repeats", pattern, dims)
    if key not in e.memo:
        i, j, t = _positions(e, lengths)
        e.memo[key] = pattern.repeats(OnnxGrid(e, t), i, j)
    return e.memo[key]
