"""Source ops: graph inputs, weights (params) and constants. They have no inputs; the interpreter
reads their values from the feeds, ``Graph.weights`` and the node's ``value`` attribute."""
from __future__ import annotations

import numpy as np

from ..types import TensorType, dtype_of
from .registry import register


def _declared(attrs, _):
    return [TensorType(attrs["dtype"], tuple(attrs["shape"]))]


def _constant(attrs, _):
    value: np.ndarray = attrs["value"]
    return [TensorType(dtype_of(value), value.shape)]


def _not_evaluated(attrs, *_):
    raise RuntimeError("source ops are read by the interpreter, not evaluated")


# input: attrs name, dtype, shape (symbolic), role (the I/O role recorded in the ONNX metadata)
register("input", (0, 0), _declared, _not_evaluated, pure=False)
# param: attrs name (canonical weight name), dtype, shape, init (how --seed initialises it)
register("param", (0, 0), _declared, _not_evaluated, pure=False)
register("constant", (0, 0), _constant, lambda attrs: [attrs["value"]])
