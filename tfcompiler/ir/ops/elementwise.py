"""Elementwise ops with NumPy broadcasting: arithmetic, activations, comparisons, casts."""
from __future__ import annotations

import math

import numpy as np

from ..types import TensorType, broadcast_shapes, numpy_dtype
from .registry import OpTypeError, register

_erf = np.frompyfunc(math.erf, 1, 1)


def _same_dtype(types):
    dtypes = {t.dtype for t in types}
    if len(dtypes) != 1:
        raise OpTypeError(f"inputs have different dtypes {sorted(dtypes)}")
    return dtypes.pop()


def _binary(result_dtype=None):
    def infer(attrs, types):
        dtype = _same_dtype(types)
        return [TensorType(result_dtype or dtype, broadcast_shapes(types[0].shape, types[1].shape))]
    return infer


def _unary(attrs, types):
    return [types[0]]


def _float_unary(attrs, types):
    if not types[0].dtype.startswith(("float", "bfloat")):
        raise OpTypeError(f"expects a float input, got {types[0].dtype}")
    return [types[0]]


def _keep_dtype(fn):
    """Wrap a NumPy function so the result keeps the first input's dtype (NumPy promotes scalars)."""
    return lambda attrs, x, *rest: [np.asarray(fn(attrs, x, *rest)).astype(x.dtype, copy=False)]


def erf(x: np.ndarray) -> np.ndarray:
    return _erf(x.astype(np.float64)).astype(x.dtype)


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    x64 = x.astype(np.float64)
    if approximate == "tanh":
        y = 0.5 * x64 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x64 + 0.044715 * x64 ** 3)))
    else:
        y = 0.5 * x64 * (1.0 + _erf(x64 / math.sqrt(2.0)).astype(np.float64))
    return y.astype(x.dtype)


for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
                   "pow": np.power}.items():
    register(_name, (2, 2), _binary(), _keep_dtype(lambda attrs, a, b, fn=_fn: fn(a, b)))

for _name, _fn in {"equal": np.equal, "less": np.less}.items():
    register(_name, (2, 2), _binary("bool"), lambda attrs, a, b, fn=_fn: [fn(a, b)])

# an identity that asks a low-precision model (tfc compile --dtype) to compute what follows from it in fp32:
# numerically fragile steps, like the Newton-Schulz iterations of a pseudo-inverse. It lowers to
# Emitter.fp32 (lower/emit.py), the one fp32 mechanism, which says what the precision pass does with it
register("keep_fp32", (1, 1), _unary, lambda attrs, x: [x])
register("neg", (1, 1), _unary, _keep_dtype(lambda attrs, x: -x))
register("relu", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.maximum(x, 0)))
register("tanh", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.tanh(x)))
register("sigmoid", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: 1 / (1 + np.exp(-x))))
register("silu", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: x / (1 + np.exp(-x))))
register("sqrt", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.sqrt(x)))
register("abs", (1, 1), _unary, _keep_dtype(lambda attrs, x: np.abs(x)))
register("elu", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.where(x > 0, x, np.expm1(np.minimum(x, 0)))))
register("log", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.log(x)))
# clip: attrs low, high (either may be None); ints stay ints
register("clip", (1, 1), _unary, _keep_dtype(lambda attrs, x: np.clip(x, attrs.get("low"), attrs.get("high"))))
register("exp", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.exp(x)))
register("sin", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.sin(x)))
register("cos", (1, 1), _float_unary, _keep_dtype(lambda attrs, x: np.cos(x)))
# gelu: attr approximate = "none" (erf, the exact form) | "tanh" (GPT-2's gelu_new)
register("gelu", (1, 1), _float_unary, lambda attrs, x: [gelu(x, attrs.get("approximate", "none"))])


def _cast_infer(attrs, types):
    return [TensorType(attrs["dtype"], types[0].shape)]


register("cast", (1, 1), _cast_infer, lambda attrs, x: [x.astype(numpy_dtype(attrs["dtype"]))])


def _where_infer(attrs, types):
    cond, a, b = types
    if cond.dtype != "bool":
        raise OpTypeError(f"where's condition must be bool, got {cond.dtype}")
    dtype = _same_dtype([a, b])
    return [TensorType(dtype, broadcast_shapes(broadcast_shapes(cond.shape, a.shape), b.shape))]


register("where", (3, 3), _where_infer, lambda attrs, c, a, b: [np.where(c, a, b)])
