"""ONNX lowering of the shape and tensor IR ops (tfcompiler.ir.ops.tensor): layout changes, gathers,
concatenation and splits, Einsum, and the slices and reshapes that keep the batch and sequence axes
dynamic (shapes read with Shape, never fixed)."""
from __future__ import annotations

from .registry import lowers


@lowers("transpose")
def transpose(e, attrs, inputs, types, label):
    return [e.node1("Transpose", inputs[0], perm=list(attrs["perm"]), label=label or "Transpose")]


@lowers("reshape")
def reshape(e, attrs, inputs, types, label):
    return [e.node1("Reshape", inputs[0], e.const(list(attrs["shape"])), label=label or "Reshape")]


@lowers("gather")
def gather(e, attrs, inputs, types, label):
    return [e.node1("Gather", *inputs, axis=attrs.get("axis", 0), label=label or "Gather")]


@lowers("concat")
def concat(e, attrs, inputs, types, label):
    return [e.node1("Concat", *inputs, axis=attrs["axis"], label=label or "Concat")]


@lowers("split")
def split(e, attrs, inputs, types, label):
    return e.node("Split", [inputs[0], e.const(list(attrs["sizes"]))], n_outputs=len(attrs["sizes"]),
                  axis=attrs["axis"], label=label or "Split")


@lowers("unsqueeze")
def unsqueeze(e, attrs, inputs, types, label):
    return [e.node1("Unsqueeze", inputs[0], e.const(list(attrs["axes"])), label=label or "Unsqueeze")]


@lowers("einsum")
def einsum(e, attrs, inputs, types, label):
    return [e.node1("Einsum", *inputs, equation=attrs["equation"], label=label or "Einsum")]


@lowers("drop_last")
def drop_last(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([0]), e.const([-attrs["count"]]), e.const([attrs["axis"]]),
                    label=label or "DropLast")]


@lowers("leading")
def leading(e, attrs, inputs, types, label):
    x, like = inputs
    return [e.node1("Slice", x, e.const([0]),
                    e.node1("Shape", like, start=attrs["like_axis"], end=attrs["like_axis"] + 1),
                    e.const([attrs["axis"]]), label=label or "Leading")]


@lowers("trailing")
def trailing(e, attrs, inputs, types, label):
    x, like = inputs
    start = e.node1("Neg", e.node1("Shape", like, start=attrs["like_axis"], end=attrs["like_axis"] + 1))
    return [e.node1("Slice", x, start, e.const([2 ** 62]), e.const([attrs["axis"]]), label=label or "Trailing")]


@lowers("keep_last")
def keep_last(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([-attrs["count"]]), e.const([2 ** 62]), e.const([attrs["axis"]]),
                    label=label or "KeepLast")]


@lowers("last_count")
def last_count(e, attrs, inputs, types, label):
    """Slice from -count: -0 is the start, so a count of 0 keeps everything."""
    x, count = inputs
    start = e.node1("Neg", e.node1("Reshape", count, e.const([1])))
    return [e.node1("Slice", x, start, e.const([2 ** 62]), e.const([attrs["axis"]]), label=label or "LastCount")]


@lowers("tile_batch")
def tile_batch(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", like, start=0, end=1), e.node1("Shape", x, start=1), axis=0)
    return [e.node1("Expand", x, shape, label=label or "TileBatch")]


@lowers("merge_outer")
def merge_outer(e, attrs, inputs, types, label):
    shape = e.node1("Concat", e.const([-1]), e.node1("Shape", inputs[0], start=2), axis=0)
    return [e.node1("Reshape", inputs[0], shape, label=label or "MergeOuter")]


@lowers("split_outer")
def split_outer(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", like, start=0, end=2), e.node1("Shape", x, start=1), axis=0)
    return [e.node1("Reshape", x, shape, label=label or "SplitOuter")]
