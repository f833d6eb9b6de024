"""The IR op registry: an op's definition (:class:`OpDef`: arity, shape rule, NumPy semantics), the
table the op modules fill with ``register``, and the lookups that verify, the interpreter and the
passes use (``op_def``, ``infer_types``). A leaf: the op modules import it, it imports none of them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..types import TensorType


class OpTypeError(ValueError):
    """An op was given inputs or attributes its signature does not allow."""


@dataclass(frozen=True)
class OpDef:
    name: str
    arity: tuple[int, int]
    infer: Callable[[dict, list[TensorType]], list[TensorType]]
    evaluate: Callable[..., list[np.ndarray]]
    pure: bool = True  # False for sources (inputs, params) that constant folding must not evaluate


REGISTRY: dict[str, OpDef] = {}


def register(name: str, arity: tuple[int, int], infer, evaluate, pure: bool = True) -> None:
    if name in REGISTRY:
        raise ValueError(f"op {name!r} registered twice")
    REGISTRY[name] = OpDef(name, arity, infer, evaluate, pure)


def op_def(name: str) -> OpDef:
    try:
        return REGISTRY[name]
    except KeyError:
        raise OpTypeError(f"unknown IR op {name!r}") from None


def infer_types(name: str, attrs: dict, in_types: list[TensorType]) -> list[TensorType]:
    spec = op_def(name)
    low, high = spec.arity
    if not low <= len(in_types) <= high:
        raise OpTypeError(f"{name} takes {low}..{high} inputs, got {len(in_types)}")
    try:
        return spec.infer(attrs, in_types)
    except OpTypeError:
        raise
    except ValueError as e:  # broadcasting and the like: still a signature violation of this op
        raise OpTypeError(f"{name}: {e}") from None
