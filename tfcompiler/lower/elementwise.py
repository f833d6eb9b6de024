"""ONNX lowering of the element-wise IR ops that are more than one ONNX op (tfcompiler.ir.ops.elementwise;
the one-to-one ones are lower/registry.py's DIRECT table): SiLU, GELU (by opset and kernel), Clip, Cast
and keep_fp32."""
from __future__ import annotations

import math

import numpy as np

from .common import ONNX_DTYPES
from .registry import lowers


@lowers("silu")
def silu(e, attrs, inputs, types, label):
    return [e.node1("Mul", inputs[0], e.node1("Sigmoid", inputs[0]), label=label or "SiLU")]


@lowers("gelu")
def gelu(e, attrs, inputs, types, label):
    approximate = attrs.get("approximate", "none")
    (x,) = inputs
    kernel = "FastGelu" if approximate == "tanh" else "Gelu"
    if e.can(kernel):  # onnxruntime then folds a preceding bias add in (BiasGelu, FastGelu's bias)
        return [e.node(kernel, [x], domain="com.microsoft", label=label or kernel)[0]]
    if e.opset >= 20:
        return [e.node1("Gelu", x, approximate=approximate, label=label or "Gelu")]
    e.miss_below("Gelu", 20)
    if approximate == "tanh":  # 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
        cube = e.node1("Mul", e.node1("Mul", x, x), x)
        inner = e.node1("Add", x, e.node1("Mul", cube, e.const(0.044715, np.float32)))
        t = e.node1("Tanh", e.node1("Mul", inner, e.const(math.sqrt(2 / math.pi), np.float32)))
    else:  # 0.5 x (1 + erf(x / √2))
        t = e.node1("Erf", e.node1("Mul", x, e.const(1 / math.sqrt(2), np.float32)))
    half_x = e.node1("Mul", x, e.const(0.5, np.float32))
    return [e.node1("Mul", half_x, e.node1("Add", t, e.const(1.0, np.float32)), label=label or "Gelu")]


@lowers("clip")
def clip(e, attrs, inputs, types, label):
    """Bounds are consts of the input's own type (ONNX Clip needs them to match)."""
    dtype = {"int64": np.int64, "float32": np.float32, "float64": np.float64}[types[0].dtype]
    bounds = [e.const(attrs[b], dtype) if attrs.get(b) is not None else "" for b in ("low", "high")]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return [e.node1("Clip", inputs[0], *bounds, label=label or "Clip")]


@lowers("cast")
def cast(e, attrs, inputs, types, label):
    return [e.node1("Cast", inputs[0], to=ONNX_DTYPES[attrs["dtype"]], label=label or "Cast")]


@lowers("keep_fp32")
def keep_fp32(e, attrs, inputs, types, label):
    return [e.fp32(inputs[0])]
