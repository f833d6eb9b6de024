"""ONNX lowering of the attention masks and biases (tfcompiler.ir.ops.nn): key padding, causality,
sparse patterns and global tokens, and the compressed-memory causal bias, each built from Range
position grids so it holds for any length, and made once per pair of lengths where layers share it;
and of the IR's typed mask (tfcompiler.ir.ops.masks), which takes the model's precision's value here
(`Emitter.mask`)."""
from __future__ import annotations

import numpy as np

from .common import length_of
from .dense_attention import emit_hide_future
from .patterns import pattern_allowed, pattern_repeats
from .registry import lowers


@lowers("padding_bias")
def emit_padding_bias(e, attrs, inputs, types, label):
    padded = e.node1("Equal", inputs[0], e.const(0))
    bias = e.node1("Where", padded, e.mask(), e.const(0.0, np.float32))
    return [e.node1("Unsqueeze", bias, e.const([1, 2]), label=label or "PaddingBias")]


@lowers("causal_mask")
def emit_causal_mask(e, attrs, inputs, types, label):
    return [emit_hide_future(e, inputs[0], ("causal", types[0].shape[2], types[0].shape[3]), label)]


@lowers("pattern_mask")
def emit_pattern_mask(e, attrs, inputs, types, label):
    (scores,) = inputs
    lengths, dims = lambda: (length_of(e, scores, 2), length_of(e, scores, 3)), (types[0].shape[2], types[0].shape[3])
    allowed = pattern_allowed(e, attrs["pattern"], lengths, dims)
    counted = pattern_repeats(e, attrs["pattern"], lengths, dims)
    if counted is not None:
        scores = e.node1("Add", scores, counted)
    return [e.node1("Where", allowed, scores, e.mask(), label=label or "SparsePattern")]


@lowers("global_pattern_bias")
def emit_global_pattern_bias(e, attrs, inputs, types, label):
    (chosen,) = inputs
    s = length_of(e, chosen, 1)
    allowed = pattern_allowed(e, attrs["pattern"], lambda: (s, s), (types[0].shape[1], types[0].shape[1]))
    chosen = e.node1("Cast", chosen, to=9)  # bool (B, S)
    allowed = e.node1("Or", e.node1("Unsqueeze", allowed, e.const([0])), e.node1("Unsqueeze", chosen, e.const([1])))
    if attrs["rows_see_all"]:
        allowed = e.node1("Or", allowed, e.node1("Unsqueeze", chosen, e.const([2])))
    return [e.node1("Where", e.node1("Unsqueeze", allowed, e.const([1])), e.const(0.0, np.float32),
                    e.mask(), label=label or "GlobalPatternBias")]


@lowers("compressed_causal_bias")
def emit_compressed_causal_bias(e, attrs, inputs, types, label):
    q, k = inputs
    stride = attrs["stride"]
    rows = e.node1("Unsqueeze", e.node1("Range", e.const(0), length_of(e, q, 2), e.const(1)), e.const([1]))
    slot = e.node1("Sub", e.node1("Unsqueeze", e.node1("Range", e.const(0), length_of(e, k, 2), e.const(1)),
                                  e.const([0])), e.const(attrs["leading"]))
    leading = e.node1("Less", slot, e.const(0))
    last = e.node1("Add", e.node1("Mul", slot, e.const(stride)), e.const(stride - 1))  # a slot's last position
    if attrs.get("front", False):  # less the padding in front: the slots' positions, less S
        slots = e.node1("Sub", length_of(e, k, 2), e.const(attrs["leading"]))
        last = e.node1("Sub", last, e.node1("Sub", e.node1("Mul", slots, e.const(stride)), length_of(e, q, 2)))
    visible = e.node1("Or", leading, e.node1("LessOrEqual", last, rows))
    return [e.node1("Where", visible, e.const(0.0, np.float32), e.mask(),
                    label=label or "CompressedCausal")]


@lowers("mask_value")
def emit_mask_value(e, attrs, inputs, types, label):
    # its own initializer, named as an IR constant is: an fp32 model is what it was when the mask was one
    return [e.mask(name=e.scope_name(label or "Constant"))]


@lowers("mask_floor")
def emit_mask_floor(e, attrs, inputs, types, label):
    return [e.node1("Clip", inputs[0], e.mask(), label=label or "MaskFloor")]
