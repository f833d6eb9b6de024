"""The mask as a typed value: `mask_value` (the additive bias of a masked key) and `mask_floor` (x
clipped at it, so a key hidden by two biases is not -inf). Their NumPy semantics use fp32's MASKED,
the reference; the lowering emits each precision's own value (tfcompiler.lower.mask_values), so a
mask is never a plain number that a low-precision model would have to recognise by its value.

`mask_value` has no inputs and is not a `constant`: constant folding does not evaluate it nor the
nodes that read it, so a bias made from it (`where(outside, mask_value, 0)`) stays a mask until
lowering, while its condition may still fold.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .nn import MASKED
from .registry import OpTypeError, register


def _floor_infer(attrs, types):
    if types[0].dtype != "float32":
        raise OpTypeError(f"mask_floor expects a float32 bias, got {types[0].dtype}")
    return [types[0]]


# mask_value(): the float32 scalar MASKED
register("mask_value", (0, 0), lambda attrs, types: [TensorType("float32", ())],
         lambda attrs: [np.asarray(MASKED, np.float32)])
# mask_floor(x): max(x, MASKED), x a float32 sum of additive biases
register("mask_floor", (1, 1), _floor_infer, lambda attrs, x: [np.maximum(x, MASKED).astype(x.dtype)])
