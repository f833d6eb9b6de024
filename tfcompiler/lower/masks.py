"""ONNX lowering of the attention masks and biases (tfcompiler.ir.ops.nn): key padding, causality,
sparse patterns and global tokens, the compressed-memory causal bias and the wrapped blocks' bias
(tfcompiler.ir.ops.wrapped_blocks), each built from Range position grids so it holds for any length,
and made once per pair of lengths where layers share it; and of the IR's typed mask
(tfcompiler.ir.ops.masks), which takes the model's precision's value here (`Emitter.mask`)."""
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


@lowers("wrapped_blocks_bias")
def emit_wrapped_blocks_bias(e, attrs, inputs, types, label):
    """The (n, n) counts of the blocks' shifts (Mod of Range grids, one Equal per shift), gathered to
    (S, T) by the positions' blocks, then log(count) or the mask."""
    q, k = inputs
    block, s, t = attrs["block"], length_of(e, q, 2), length_of(e, k, 2)
    multiple = attrs.get("multiple", block)
    n = e.node1("Mul", e.node1("Div", e.node1("Add", t, e.const(multiple - 1)), e.const(multiple)),
                e.const(multiple // block))
    blocks = e.node1("Range", e.const(0), n, e.const(1))
    rows, cols = e.node1("Unsqueeze", blocks, e.const([1])), e.node1("Unsqueeze", blocks, e.const([0]))
    counts = None
    for shift in range(-attrs["before"], attrs["after"] + 1):
        if shift:  # a shift of n blocks or more is none
            moved = e.node1("Where", e.node1("Less", e.const(abs(shift)), n), e.const(shift), e.const(0))
            target = e.node1("Mod", e.node1("Add", rows, moved), n)
        else:
            target = rows
        hit = e.node1("Cast", e.node1("Equal", target, cols), to=1)
        counts = hit if counts is None else e.node1("Add", counts, hit)
    query_blocks = e.node1("Div", e.node1("Range", e.node1("Sub", t, s), t, e.const(1)), e.const(block))
    key_blocks = e.node1("Div", e.node1("Range", e.const(0), t, e.const(1)), e.const(block))
    seen = e.node1("Gather", e.node1("Gather", counts, query_blocks, axis=0), key_blocks, axis=1)
    return [e.node1("Where", e.node1("Less", e.const(0.0, np.float32), seen),
                    e.node1("Log", e.node1("Max", seen, e.const(1.0, np.float32))), e.mask(),
                    label=label or "WrappedBlocks")]


@lowers("mask_value")
def emit_mask_value(e, attrs, inputs, types, label):
    # its own initializer, named as an IR constant is: an fp32 model is what it was when the mask was one
    return [e.mask(name=e.scope_name(label or "Constant"))]


@lowers("mask_floor")
def emit_mask_floor(e, attrs, inputs, types, label):
    return [e.node1("Clip", inputs[0], e.mask(), label=label or "MaskFloor")]
