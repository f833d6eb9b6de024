"""Tensor types of the IR: an element type and a shape whose dims are ints or symbols.

Symbols are the Hugging Face / Optimum axis names (``batch_size``, ``sequence_length``, ...), so the
lowered ONNX carries the names users already know as its ``dim_param``s.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import numpy as np

Dim = Union[int, str]

BATCH = "batch_size"
SEQUENCE = "sequence_length"
DECODER_SEQUENCE = "decoder_sequence_length"

DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int8", "uint8", "bool")


@dataclass(frozen=True)
class TensorType:
    """The element type and (possibly symbolic) shape of one IR value."""

    dtype: str
    shape: tuple[Dim, ...]

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}")

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"

    def with_shape(self, shape) -> "TensorType":
        return TensorType(self.dtype, tuple(shape))


def numpy_dtype(dtype: str) -> np.dtype:
    return np.dtype({"bool": np.bool_}.get(dtype, dtype))


def dtype_of(array: np.ndarray) -> str:
    return "bool" if array.dtype == np.bool_ else str(array.dtype)


def broadcast_shapes(a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """NumPy broadcasting over symbolic dims: equal dims or a 1 merge; anything else is an error."""
    rank = max(len(a), len(b))
    a = (1,) * (rank - len(a)) + tuple(a)
    b = (1,) * (rank - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x == y or y == 1:
            out.append(x)
        elif x == 1:
            out.append(y)
        else:
            raise ValueError(f"shapes {a} and {b} do not broadcast")
    return tuple(out)


def concrete_shape(shape: tuple[Dim, ...], sizes: dict[str, int]) -> tuple[int, ...]:
    """Replace symbols by sizes (used to make random inputs for the interpreter). A derived dim such
    as ``1+sequence_length`` or ``min(past_memory_length+sequence_length,512)`` is evaluated."""
    return tuple(d if isinstance(d, int) else _size(d, sizes) for d in shape)


def _size(dim: str, sizes: dict[str, int]) -> int:
    import ast
    import operator

    arithmetic = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                  ast.FloorDiv: operator.floordiv, ast.Div: operator.truediv, ast.Mod: operator.mod}

    def value(node) -> int:
        if isinstance(node, ast.Name):
            return sizes[node.id]
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in arithmetic:
            return arithmetic[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("min", "max", "ceil", "floor"):
            args = [value(a) for a in node.args]
            return {"min": min, "max": max, "ceil": lambda x: -(-x // 1),
                    "floor": lambda x: x // 1}[node.func.id](*args)
        raise KeyError(dim)

    return sizes[dim] if dim in sizes else int(value(ast.parse(dim, mode="eval").body))
