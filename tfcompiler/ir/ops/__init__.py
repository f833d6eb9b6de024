"""The IR's op set: each op's signature, shape rule and NumPy semantics, in one registry.

An :class:`OpDef` says how many inputs an op takes, how its output types follow from its input types
and attributes (the shape rule, checked by ``verify``), and how it computes (the NumPy interpreter,
the semantic reference that passes and lowering are checked against). How an op becomes ONNX lives
in ``tfcompiler.lower``.
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


# (registration side effects)
from . import (banded, block_sparse, block_summary, clustered, conv, elementwise, linear, lsh, nn,  # noqa: E402,F401
               prob_sparse, quantized, recurrent, relative, resample, rope, routing, segments, sources,
               star, tensor, token_chunks, favor)
