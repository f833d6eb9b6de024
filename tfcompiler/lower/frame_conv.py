"""ONNX lowering of `frame_conv` (tfcompiler.ir.ops.frame_conv): Transpose to (B, C, S), one Conv with 'same'
zero padding, Transpose back."""
from __future__ import annotations

from .registry import lowers


@lowers("frame_conv")
def frame_conv(e, attrs, inputs, types, label):
    x, weight, bias = inputs
    k = types[1].shape[2]
    channels_first = e.node1("Transpose", x, perm=[0, 2, 1])
    conv = e.node1("Conv", channels_first, weight, bias, kernel_shape=[k], pads=[k // 2, k // 2])
    return [e.node1("Transpose", conv, perm=[0, 2, 1], label=label or "FrameConv")]
