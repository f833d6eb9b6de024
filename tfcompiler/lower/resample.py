"""ONNX lowering of the length-changing ops (tfcompiler.ir.ops.resample): windows by a Slice/Concat
prefix and AveragePool / MaxPool with ceil_mode (a short last window averages what it has: no
padding is counted), or a strided Slice; upsampling by Expand on a new axis and Reshape; the spaced
relative distances by Range."""
from __future__ import annotations

from .common import ONNX_DTYPES, length_of, pad_end, padding_to
from .registry import lowers

BIG = 2 ** 62


@lowers("shorten")
def shorten(e, attrs, inputs, types, label):
    (x,) = inputs
    stride, rank = attrs["stride"], types[0].rank
    if attrs.get("separate_cls"):
        first = e.node1("Slice", x, e.const([0]), e.const([1]), e.const([1]))
        rest = e.node1("Slice", x, e.const([0]), e.const([-1]), e.const([1])) if attrs.get("truncate") else x
        x = e.node1("Concat", first, rest, axis=1)
    if attrs["mode"] == "first":
        return [e.node1("Slice", x, e.const([0]), e.const([BIG]), e.const([1]), e.const([stride]),
                        label=label or "Shorten")]
    dtype = types[0].dtype
    if dtype != "float32":
        x = e.node1("Cast", x, to=1)
    # pooling runs over the last axis of (N, C, L): the sequence goes last
    channels_last = e.node1("Unsqueeze", x, e.const([1])) if rank == 2 else e.node1("Transpose", x, perm=[0, 2, 1])
    pool = dict(kernel_shape=[stride], strides=[stride], ceil_mode=1)
    if attrs["mode"] == "mean":
        pooled = e.node1("AveragePool", channels_last, count_include_pad=0, **pool)
    elif attrs["mode"] == "max":
        pooled = e.node1("MaxPool", channels_last, **pool)
    else:  # min = -max(-x)
        pooled = e.node1("Neg", e.node1("MaxPool", e.node1("Neg", channels_last), **pool))
    out = e.node1("Squeeze", pooled, e.const([1])) if rank == 2 else e.node1("Transpose", pooled, perm=[0, 2, 1])
    if dtype != "float32":
        out = e.node1("Cast", out, to=ONNX_DTYPES[dtype])
    return [e.node1("Identity", out, label=label or "Shorten")]


@lowers("upsample")
def upsample(e, attrs, inputs, types, label):
    x, like = inputs
    stride, width = attrs["stride"], types[0].shape[2]
    first = None
    if attrs.get("separate_cls"):
        first = e.node1("Slice", x, e.const([0]), e.const([1]), e.const([1]))
        x = e.node1("Slice", x, e.const([1]), e.const([BIG]), e.const([1]))
    shape = e.node1("Concat", e.node1("Shape", x, start=0, end=2), e.const([stride, width]), axis=0)
    repeated = e.node1("Reshape", e.node1("Expand", e.node1("Unsqueeze", x, e.const([2])), shape),
                       e.const([0, -1, width]))
    # the last window may be cut short by the input length: zeros fill it, then the cut to length
    filled = e.node1("Pad", repeated, e.const([0, 0, 0, 0, stride, 0]))
    wanted = length_of(e, like, 1)
    if first is not None:
        wanted = e.node1("Sub", wanted, e.const(1))
    out = e.node1("Slice", filled, e.const([0]), e.node1("Reshape", wanted, e.const([1])), e.const([1]))
    if first is not None:
        out = e.node1("Concat", first, out, axis=1)
    return [e.node1("Identity", out, label=label or "Upsample")]


@lowers("shift_right")
def shift_right(e, attrs, inputs, types, label):
    (x,) = inputs
    pads = [0] * types[0].rank * 2
    pads[1] = attrs["count"]
    padded = e.node1("Pad", x, e.const(pads))
    return [e.node1("Slice", padded, e.const([0]), e.node1("Reshape", length_of(e, x, 1), e.const([1])),
                    e.const([1]), label=label or "ShiftRight")]


@lowers("fold_windows")
def fold_windows(e, attrs, inputs, types, label):
    (x,) = inputs
    size, width = attrs["size"], types[0].shape[2]
    padded = pad_end(e, x, padding_to(e, length_of(e, x, 1), size), 1, 3)
    return [e.node1("Reshape", padded, e.const([0, -1, size, width]), label=label or "FoldWindows")]


@lowers("fill_windows")
def fill_windows(e, attrs, inputs, types, label):
    (x,) = inputs
    return [pad_end(e, x, padding_to(e, length_of(e, x, 1), attrs["size"]), 1, types[0].rank)]


def whole_length(e, x: str, size: int) -> str:
    """int64 [1]: how many of x's entries along axis 1 fill whole windows of `size`."""
    length = length_of(e, x, 1)
    return e.node1("Reshape", e.node1("Sub", length, e.node1("Mod", length, e.const(size))), e.const([1]))


@lowers("whole_windows")
def whole_windows(e, attrs, inputs, types, label):
    (x,) = inputs
    return [e.node1("Slice", x, e.const([0]), whole_length(e, x, attrs["size"]), e.const([1]),
                    label=label or "WholeWindows")]


@lowers("window_remainder")
def window_remainder(e, attrs, inputs, types, label):
    (x,) = inputs
    return [e.node1("Slice", x, whole_length(e, x, attrs["size"]), e.const([BIG]), e.const([1]),
                    label=label or "WindowRemainder")]


@lowers("fold_grid")
def fold_grid(e, attrs, inputs, types, label):
    (x,) = inputs
    width, size, rank = attrs["width"], attrs["size"], types[0].rank
    block = width * size
    missing = padding_to(e, length_of(e, x, 1), block)
    pads = e.node1("Concat", e.const([0] * (rank + 1)), e.node1("Reshape", missing, e.const([1])),
                   e.const([0] * (rank - 2)), axis=0)
    tail = list(types[0].shape[2:])
    grid = e.node1("Reshape", e.node1("Pad", x, pads), e.const([0, -1, size, width // size, size] + tail))
    order = [0, 1, 3, 4, 2] + list(range(5, 5 + len(tail)))
    squares = e.node1("Transpose", grid, perm=order)
    return [e.node1("Reshape", squares, e.const([0, -1, size * size] + tail), label=label or "FoldGrid")]


@lowers("unfold_windows")
def unfold_windows(e, attrs, inputs, types, label):
    x, like = inputs
    row = e.node1("Reshape", x, e.const([0, -1, types[0].shape[3]]))
    return [e.node1("Slice", row, e.const([0]), e.node1("Reshape", length_of(e, like, 1), e.const([1])),
                    e.const([1]), label=label or "UnfoldWindows")]


@lowers("spaced_distances")
def spaced_distances(e, attrs, inputs, types, label):
    ratio, unit, offset = attrs["ratio"], attrs["unit"], attrs["offset"]
    s, t = length_of(e, inputs[0], 2), length_of(e, inputs[1], 2)
    start = e.node1("Sub", e.const(1 + offset * (1 - ratio)), t)
    stop = e.node1("Add", e.node1("Mul", e.node1("Sub", s, e.const(1)), e.const(ratio)),
                   e.const(1 + offset * (1 - ratio)))
    n = e.node1("Range", start, stop, e.const(1))
    return [e.node1("Mul", n, e.const(unit), label=label or "SpacedDistances")]


@lowers("spaced_distance_index")
def spaced_distance_index(e, attrs, inputs, types, label):
    s, t = length_of(e, inputs[0], 2), length_of(e, inputs[1], 2)
    rows = e.node1("Unsqueeze", e.node1("Mul", e.node1("Range", e.const(0), s, e.const(1)), e.const(attrs["ratio"])),
                   e.const([1]))
    columns = e.node1("Unsqueeze", e.node1("Range", e.const(0), t, e.const(1)), e.const([0]))
    return [e.node1("Add", e.node1("Sub", rows, columns), e.node1("Sub", t, e.const(1)),
                    label=label or "SpacedDistanceIndex")]
