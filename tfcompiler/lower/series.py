"""ONNX lowering of the series ops (tfcompiler.ir.ops.series): the circular convolution (the wrapped steps
concatenated around the series, then a Conv), Informer's max-pooling (MaxPool over steps), a static slice
and static features spread over the steps."""
from __future__ import annotations

from .registry import lowers

END = 2 ** 62  # Slice's "to the end"


def cut(e, x: str, start: int, end, axis: int, step: int = 1, label: str = "") -> str:
    return e.node1("Slice", x, e.const([start]), e.const([END if end is None else end]), e.const([axis]),
                   e.const([step]), label=label or "Slice")


@lowers("circular_conv")
def circular_conv(e, attrs, inputs, types, label):
    """Concat(x[-p:], x, x[:p]) along the steps, Transpose to (B, C, S), Conv(kernel k, no padding), back."""
    x, weight, *bias = inputs
    pad = types[1].shape[2] // 2
    wrapped = e.node1("Concat", cut(e, x, -pad, None, 1), x, cut(e, x, 0, pad, 1), axis=1) if pad else x
    conv = e.node1("Conv", e.node1("Transpose", wrapped, perm=[0, 2, 1]), weight, *bias,
                   kernel_shape=[types[1].shape[2]])
    return [e.node1("Transpose", conv, perm=[0, 2, 1], label=label or "CircularConv")]


@lowers("max_pool")
def max_pool(e, attrs, inputs, types, label):
    pooled = e.node1("MaxPool", e.node1("Transpose", inputs[0], perm=[0, 2, 1]), kernel_shape=[attrs["kernel"]],
                     strides=[attrs["stride"]], pads=[attrs["pad"]] * 2)
    return [e.node1("Transpose", pooled, perm=[0, 2, 1], label=label or "MaxPool")]


@lowers("slice")
def slice_(e, attrs, inputs, types, label):
    return [cut(e, inputs[0], attrs["start"], attrs.get("end"), attrs["axis"], attrs.get("step", 1), label)]


@lowers("spread_steps")
def spread_steps(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", x, start=0, end=1), e.node1("Shape", like, start=1, end=2),
                    e.node1("Shape", x, start=1, end=2), axis=0)
    return [e.node1("Expand", e.node1("Unsqueeze", x, e.const([1])), shape, label=label or "SpreadSteps")]
