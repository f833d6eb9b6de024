"""ONNX lowering of the normalisations (tfcompiler.ir.ops.nn): Softmax, LayerNorm, RMSNorm (the
opset-23 op, or its decomposition in fp32 below it) and skip_norm (a residual sum and its norm, one
onnxruntime kernel where the target allows)."""
from __future__ import annotations

import numpy as np

from .common import reduce
from .registry import lowers


@lowers("softmax")
def softmax(e, attrs, inputs, types, label):
    return [e.node1("Softmax", inputs[0], axis=attrs.get("axis", -1), label=label or "Softmax")]


@lowers("layer_norm")
def layer_norm(e, attrs, inputs, types, label):
    return [e.node1("LayerNormalization", *inputs, axis=-1, epsilon=attrs["epsilon"],
                    label=label or "LayerNorm")]


@lowers("rms_norm")
def rms_norm(e, attrs, inputs, types, label):
    x, scale = inputs
    if e.opset >= 23:
        return [e.node1("RMSNormalization", x, scale, axis=-1, epsilon=attrs["epsilon"],
                        label=label or "RMSNorm")]
    e.miss_below("RMSNormalization", 23)
    x = e.fp32(x)
    mean = reduce(e, "ReduceMean", e.node1("Mul", x, x), [-1])
    rms = e.node1("Sqrt", e.node1("Add", mean, e.const(attrs["epsilon"], np.float32)))
    return [e.node1("Mul", e.node1("Div", x, rms), scale, label=label or "RMSNorm")]


@lowers("skip_norm")
def skip_norm(e, attrs, inputs, types, label):
    x, skip, *params = inputs
    kernel = "SkipLayerNormalization" if attrs["kind"] == "layer_norm" else "SkipSimplifiedLayerNormalization"
    if e.can(kernel):
        outputs = e.node(kernel, [x, skip, *params], n_outputs=4, domain="com.microsoft",
                         epsilon=attrs["epsilon"], label=label or kernel)
        return [outputs[0], outputs[3]]  # the norm, and the sum (input_skip_bias_sum)
    total = e.node1("Add", x, skip, label="Residual")
    norm = layer_norm if attrs["kind"] == "layer_norm" else rms_norm
    return [norm(e, attrs, [total, *params], types[:1] + types[2:], label)[0], total]
