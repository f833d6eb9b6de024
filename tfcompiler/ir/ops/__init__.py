"""The IR's op set: each op's signature, shape rule and NumPy semantics, in one registry (registry.py).

An :class:`OpDef` says how many inputs an op takes, how its output types follow from its input types
and attributes (the shape rule, checked by ``verify``), and how it computes (the NumPy interpreter,
the semantic reference that passes and lowering are checked against). How an op becomes ONNX lives
in ``tfcompiler.lower``.
"""
from __future__ import annotations

# each op module registers its ops on import
from . import (banded, block_sparse, block_summary, clustered, conv, elementwise, favor, linear, lsh,  # noqa: F401
               masks, nn, prob_sparse, quantized, recurrent, relative, resample, rope, routing, segments, sources,
               star, tensor, token_chunks)
from .registry import REGISTRY, OpDef, OpTypeError, infer_types, op_def, register

__all__ = ["REGISTRY", "OpDef", "OpTypeError", "infer_types", "op_def", "register"]
