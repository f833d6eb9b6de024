"""The additive masks' values, per precision: what the lowering emits for a masked key (`Emitter.mask`),
the threshold at or below which a key bias marks padding (`Emitter.mask_threshold`) and LSH's bias of
a query's own key (`Emitter.self_mask`).

In fp32 they are the IR's reference values (MASKED, MASKED / 2, SELF_MASK). fp32's most negative
number is -inf in fp16 and bf16, and a row of -inf scores is NaN after softmax, so a low-precision
model takes shares of its type's most negative number instead: half of it for the mask (score + mask
stays finite), a quarter for the threshold, an eighth for the self-mask, which keeps the order
mask < threshold < self-mask < every score. The shares are powers of two, so the values are exact in
fp32 and in the low type alike: the retyper (lower/precision.py) converts them as they are.
"""
from __future__ import annotations

import ml_dtypes
import numpy as np

from ..ir.ops.lsh import SELF_MASK
from ..ir.ops.nn import MASKED
from .precision import NUMPY_TYPES

MASK, THRESHOLD, SELF = "mask", "threshold", "self"
FP32_VALUES = {MASK: float(MASKED), THRESHOLD: float(MASKED) / 2, SELF: SELF_MASK}
LOW_SHARES = {MASK: 1 / 2, THRESHOLD: 1 / 4, SELF: 1 / 8}  # of the low type's most negative number


def mask_value(kind: str, precision: str) -> np.ndarray:
    """The value of mask `kind` (MASK, THRESHOLD, SELF) in a model computed in `precision`, as a
    float32 scalar (the lowering emits fp32; the retyper converts it exactly)."""
    if precision == "fp32":
        return np.asarray(FP32_VALUES[kind], np.float32)
    return np.asarray(float(ml_dtypes.finfo(NUMPY_TYPES[precision]).min) * LOW_SHARES[kind], np.float32)
