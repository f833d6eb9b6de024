"""ONNX lowering of the convolutions (tfcompiler.ir.ops.conv and segments): a depthwise Conv over
the sequence per head, a depthwise 2-D Conv over a grid of tokens, and the strided Conv that
compresses a sequence."""
from __future__ import annotations

import numpy as np

from .common import length_of, pad_end, padding_to
from .registry import lowers


@lowers("sequence_conv")
def sequence_conv(e, attrs, inputs, types, label):
    x, weight = inputs
    heads, k = types[1].shape[0], types[1].shape[2]
    return [e.node1("Conv", x, weight, group=heads, kernel_shape=[k, 1], pads=[k // 2, 0, k // 2, 0],
                    label=label or "SequenceConv")]


@lowers("grid_conv")
def grid_conv(e, attrs, inputs, types, label):
    """Slice off the skipped tokens, Reshape to (B, rows, W, D), Transpose to NCHW, Conv(group=D),
    back, and Concat zeros for the skipped tokens."""
    x, weight, bias = inputs
    width, skip, d, k = attrs["grid_width"], attrs.get("skip", 0), types[0].shape[2], types[1].shape[2]
    grid = x
    if skip:
        grid = e.node1("Slice", x, e.const([skip]), e.const([2 ** 62]), e.const([1]))
    grid = e.node1("Transpose", e.node1("Reshape", grid, e.const([0, -1, width, d])), perm=[0, 3, 1, 2])
    conv = e.node1("Conv", grid, weight, bias, group=d, kernel_shape=[k, k], pads=[k // 2] * 4)
    out = e.node1("Reshape", e.node1("Transpose", conv, perm=[0, 2, 3, 1]), e.const([0, -1, d]))
    if skip:
        zeros = e.node1("Mul", e.node1("Slice", x, e.const([0]), e.const([skip]), e.const([1])),
                        e.const(0.0, np.float32))
        out = e.node1("Concat", zeros, out, axis=1)
    return [e.node1("Identity", out, label=label or "GridConv")]


@lowers("compress")
def compress(e, attrs, inputs, types, label):
    """Pad the sequence to a whole stride (at its end, or its front), Transpose to (B, C, T),
    Conv(kernel = stride = s, group), Transpose back."""
    x, weight, bias = inputs
    stride = attrs["stride"]
    t = length_of(e, x, 1)
    padded = pad_end(e, x, padding_to(e, t, stride), 1, 3, front=attrs.get("front", False))
    channels_first = e.node1("Transpose", padded, perm=[0, 2, 1])
    conv = e.node1("Conv", channels_first, weight, bias, group=attrs["groups"], kernel_shape=[stride],
                   strides=[stride])
    return [e.node1("Transpose", conv, perm=[0, 2, 1], label=label or "Compress")]
