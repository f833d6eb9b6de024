"""ONNX lowering of the frames' subsampling (tfcompiler.ir.ops.subsample): the strided convolution is ONNX's
Conv; the subsampled padding mask is the rows' lengths taken through each convolution's length arithmetic in
float (exact for lengths below 2^24; Floor is Python's floor division, where an integer Div truncates negatives),
compared with the positions of the subsampled states."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .common import length_of, reduce
from .registry import lowers


@lowers("conv")
def conv(e, attrs, inputs, types, label):
    x, weight, bias = inputs
    pads = list(attrs["pads"])
    return [e.node1("Conv", x, weight, bias, kernel_shape=list(types[1].shape[2:]), strides=list(attrs["strides"]),
                    pads=pads + pads, label=label or "Conv")]


@lowers("subsampled_mask")
def subsampled_mask(e, attrs, inputs, types, label):
    mask, like = inputs
    lengths = e.node1("Cast", reduce(e, "ReduceSum", mask, [1], keepdims=False), to=TensorProto.FLOAT)
    for kernel, stride, pad in attrs["layers"]:  # n' = floor((n + 2·pad - kernel) / stride) + 1
        shifted = e.node1("Add", lengths, e.const(float(2 * pad - kernel), np.float32))
        lengths = e.node1("Add", e.node1("Floor", e.node1("Div", shifted, e.const(float(stride), np.float32))),
                          e.const(1.0, np.float32))
    positions = e.node1("Cast", e.node1("Range", e.const(0), length_of(e, like, 1), e.const(1)),
                        to=TensorProto.FLOAT)
    real = e.node1("Less", e.node1("Unsqueeze", positions, e.const([0])),
                   e.node1("Unsqueeze", lengths, e.const([1])))
    return [e.node1("Cast", real, to=TensorProto.INT64, label=label or "SubsampledMask")]
