"""The IR's op set: each op's signature, shape rule and NumPy semantics, in one registry (registry.py).

An :class:`OpDef` says how many inputs an op takes, how its output types follow from its input types
and attributes (the shape rule, checked by ``verify``), and how it computes (the NumPy interpreter,
the semantic reference that passes and lowering are checked against). How an op becomes ONNX lives
in ``tfcompiler.lower``.
"""
from __future__ import annotations

from ...submodules import import_submodules
from .registry import REGISTRY, OpDef, OpTypeError, infer_types, op_def, register

import_submodules(__name__, __path__)  # each op module registers its ops on import

__all__ = ["REGISTRY", "OpDef", "OpTypeError", "infer_types", "op_def", "register"]
