"""ONNX lowering of the reductions (ReduceMax / ReduceSum / ReduceMean over attribute axes,
tfcompiler.ir.ops.linear) and of segment means (tfcompiler.ir.ops.segments: per-segment sums by
Pad and Reshape, over the kept counts or the segment length)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .common import length_of, pad_end, reduce
from .registry import lowers, register


def _reduction(op_type: str):
    """The lowering of an IR reduction over `axes` by ONNX `op_type`."""
    return lambda e, attrs, inputs, types, label: [reduce(e, op_type, inputs[0], attrs["axes"],
                                                          attrs.get("keepdims", True), label)]


def _pad_sequence(e, x: str, amount: str, front: bool) -> str:
    """x (B, H, S, D) with `amount` zeros more along S: at the end, or at the front (lucidrains' landmarks)."""
    if not front:
        return pad_end(e, x, amount, 2, 4)
    pads = e.node1("Concat", e.const([0, 0]), e.node1("Reshape", amount, e.const([1])), e.const([0] * 5), axis=0)
    return e.node1("Pad", x, pads)


@lowers("segment_means")
def segment_means(e, attrs, inputs, types, label):
    """Pad to m·ceil(S/m), Reshape to (B,H,m,len,D), ReduceSum, divide by the kept counts (or by len)."""
    x, keep = inputs
    m, width, front = attrs["segments"], types[0].shape[3], attrs.get("front", False)
    s = length_of(e, x, 2)
    length = e.node1("Div", e.node1("Add", s, e.const(m - 1)), e.const(m))
    pad = e.node1("Sub", e.node1("Mul", length, e.const(m)), s)
    kept = e.node1("Mul", x, keep)
    sums = reduce(e, "ReduceSum", e.node1("Reshape", _pad_sequence(e, kept, pad, front), e.const([0, 0, m, -1, width])),
                  [3], keepdims=False)
    if attrs.get("over", "kept") == "all":
        return [e.node1("Div", sums, e.node1("Cast", length, to=TensorProto.FLOAT), label=label or "SegmentMeans")]
    counts = e.node1("Expand", keep, e.node1("Concat", e.node1("Shape", keep, start=0, end=1),
                                             e.const([1]), e.node1("Shape", x, start=2, end=3),
                                             e.const([1]), axis=0))
    counts = reduce(e, "ReduceSum", e.node1("Reshape", _pad_sequence(e, counts, pad, front), e.const([0, 1, m, -1, 1])),
                    [3], keepdims=False)
    counts = e.node1("Max", counts, e.const(1.0, np.float32))
    return [e.node1("Div", sums, counts, label=label or "SegmentMeans")]


register("reduce_max", _reduction("ReduceMax"))
register("reduce_sum", _reduction("ReduceSum"))
register("reduce_mean", _reduction("ReduceMean"))
