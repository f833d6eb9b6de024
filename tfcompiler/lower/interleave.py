"""ONNX lowering of interleave and deinterleave (tfcompiler.ir.ops.interleave): the sequences stacked on a new
axis after the sequence axis and reshaped into one, and one of them taken back by a strided `Slice`."""
from __future__ import annotations

from .registry import lowers

BIG = 2 ** 62  # a Slice end past any length


@lowers("interleave")
def interleave(e, attrs, inputs, types, label):
    stacked = e.node1("Concat", *(e.node1("Unsqueeze", x, e.const([2])) for x in inputs), axis=2)  # (B, S, k, ...)
    return [e.node1("Reshape", stacked, e.const([0, -1] + list(types[0].shape[2:])), label=label or "Interleave")]


@lowers("deinterleave")
def deinterleave(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([attrs["index"]]), e.const([BIG]), e.const([1]),
                    e.const([attrs["count"]]), label=label or "Deinterleave")]
