"""Layout and indexing ops: matmul, einsum, transpose, reshape, gather, concat, split, unsqueeze, positions,
and the fold of a document's sentences into the batch (merge_outer / split_outer)."""
from __future__ import annotations

import numpy as np

from ..types import TensorType, broadcast_shapes
from .registry import OpTypeError, register


def _matmul_infer(attrs, types):
    a, b = types
    if a.dtype != b.dtype:
        raise OpTypeError(f"matmul of {a.dtype} and {b.dtype}")
    if a.rank < 2 or b.rank < 2:
        raise OpTypeError("matmul needs rank >= 2 inputs")
    k_a, k_b = a.shape[-1], b.shape[-2]
    if k_a != k_b:
        raise OpTypeError(f"matmul inner dims differ: {a} @ {b}")
    batch = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return [TensorType(a.dtype, batch + (a.shape[-2], b.shape[-1]))]


def _einsum_infer(attrs, types):
    """Explicit-output equations only (``bhij,hg->bgij``); each letter has one size (no broadcasting)."""
    inputs, output = attrs["equation"].split("->")
    terms = inputs.split(",")
    if len(terms) != len(types) or any(len(t) != x.rank for t, x in zip(terms, types)):
        raise OpTypeError(f"einsum {attrs['equation']} does not fit {[str(t) for t in types]}")
    sizes = {}
    for term, t in zip(terms, types):
        for letter, dim in zip(term, t.shape):
            if sizes.setdefault(letter, dim) != dim:
                raise OpTypeError(f"einsum {attrs['equation']}: '{letter}' is {sizes[letter]} and {dim}")
    return [types[0].with_shape(sizes[letter] for letter in output)]


def _transpose_infer(attrs, types):
    perm = attrs["perm"]
    if sorted(perm) != list(range(types[0].rank)):
        raise OpTypeError(f"perm {perm} does not fit rank {types[0].rank}")
    return [types[0].with_shape(types[0].shape[p] for p in perm)]


def _reshape_infer(attrs, types):
    """Target dims are ints; 0 copies the input dim at that index (ONNX Reshape semantics), which keeps
    symbolic dims symbolic. -1 is allowed only when every input dim is known."""
    source = types[0].shape
    target = []
    for i, d in enumerate(attrs["shape"]):
        target.append(source[i] if d == 0 else d)
    if -1 in target:
        if not all(isinstance(d, int) for d in source + tuple(target)):
            raise OpTypeError("reshape with -1 needs a fully known shape")
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(source)) // known
    return [types[0].with_shape(target)]


def _reshape_eval(attrs, x):
    target = [x.shape[i] if d == 0 else d for i, d in enumerate(attrs["shape"])]
    return [x.reshape(target)]


def _gather_infer(attrs, types):
    data, indices = types
    if indices.dtype not in ("int64", "int32"):
        raise OpTypeError(f"gather indices must be integers, got {indices.dtype}")
    axis = attrs.get("axis", 0) % data.rank
    return [data.with_shape(data.shape[:axis] + indices.shape + data.shape[axis + 1:])]


def _concat_infer(attrs, types):
    axis = attrs["axis"] % types[0].rank
    dims = [t.shape[axis] for t in types]
    total = sum(dims) if all(isinstance(d, int) for d in dims) else "+".join(map(str, dims))
    shape = list(types[0].shape)
    shape[axis] = total
    for t in types[1:]:
        if t.dtype != types[0].dtype or t.rank != types[0].rank:
            raise OpTypeError("concat inputs differ in dtype or rank")
    return [types[0].with_shape(shape)]


def _unsqueeze_infer(attrs, types):
    shape = list(types[0].shape)
    for axis in sorted(attrs["axes"]):
        shape.insert(axis, 1)
    return [types[0].with_shape(shape)]


def _product(a, b):
    """A folded dim: a number when both are known, else a derived symbol (`batch_size*sentences`)."""
    return a * b if isinstance(a, int) and isinstance(b, int) else f"{a}*{b}"


def _positions_infer(attrs, types):
    return [TensorType("int64", (1, types[0].shape[attrs.get("axis", 1)]))]


def _positions_eval(attrs, x):
    length = x.shape[attrs.get("axis", 1)]
    offset = attrs.get("offset", 0)
    return [np.arange(offset, offset + length, dtype=np.int64)[None, :]]


register("matmul", (2, 2), _matmul_infer, lambda attrs, a, b: [np.matmul(a, b)])
register("einsum", (1, 3), _einsum_infer,
         lambda attrs, *xs: [np.einsum(attrs["equation"], *xs).astype(xs[0].dtype)])
register("transpose", (1, 1), _transpose_infer, lambda attrs, x: [np.transpose(x, attrs["perm"])])
register("reshape", (1, 1), _reshape_infer, _reshape_eval)
register("gather", (2, 2), _gather_infer,
         lambda attrs, data, idx: [np.take(data, idx, axis=attrs.get("axis", 0))])
register("concat", (1, 64), _concat_infer,
         lambda attrs, *xs: [np.concatenate(xs, axis=attrs["axis"])])
register("unsqueeze", (1, 1), _unsqueeze_infer,
         lambda attrs, x: [np.expand_dims(x, tuple(attrs["axes"]))])
# tile_batch(x (1, ...), like (B, ...)) -> (B, ...): x repeated over like's batch
register("tile_batch", (2, 2), lambda attrs, t: [t[0].with_shape(t[1].shape[:1] + t[0].shape[1:])],
         lambda attrs, x, like: [np.broadcast_to(x, like.shape[:1] + x.shape[1:]).copy()])
# split(x) attrs axis, sizes -> one output per size: consecutive pieces along axis
register("split", (1, 1), lambda attrs, t: [t[0].with_shape(t[0].shape[:attrs["axis"] % t[0].rank] + (size,)
                                                            + t[0].shape[attrs["axis"] % t[0].rank + 1:])
                                            for size in attrs["sizes"]],
         lambda attrs, x: np.split(x, np.cumsum(attrs["sizes"])[:-1], axis=attrs["axis"]))
# merge_outer(x (A, B, ...)) -> (A*B, ...): documents' sentences folded into the batch
register("merge_outer", (1, 1), lambda attrs, t: [t[0].with_shape((_product(*t[0].shape[:2]),) + t[0].shape[2:])],
         lambda attrs, x: [x.reshape((-1,) + x.shape[2:])])
# split_outer(x (A*B, ...), like (A, B, ...)) -> (A, B, ...): the fold undone
register("split_outer", (2, 2), lambda attrs, t: [t[0].with_shape(t[1].shape[:2] + t[0].shape[1:])],
         lambda attrs, x, like: [x.reshape(like.shape[:2] + x.shape[1:])])
# positions(x): the int64 positions [offset, offset + len) of x along `axis`, shaped (1, len).
register("positions", (1, 1), _positions_infer, _positions_eval)
# leading(x, like) attrs axis, like_axis: the first like.shape[like_axis] entries of x along axis
register("leading", (2, 2), lambda attrs, t: [t[0].with_shape(
             t[0].shape[:attrs["axis"]] + (t[1].shape[attrs["like_axis"]],) + t[0].shape[attrs["axis"] + 1:])],
         lambda attrs, x, like: [np.take(x, np.arange(like.shape[attrs["like_axis"]]), axis=attrs["axis"])])
# trailing(x, like) attrs axis, like_axis: the last like.shape[like_axis] entries of x along axis (a cached
# decoder's mask, which covers the past and the new tokens, cut to the new ones)
register("trailing", (2, 2), lambda attrs, t: [t[0].with_shape(
             t[0].shape[:attrs["axis"]] + (t[1].shape[attrs["like_axis"]],) + t[0].shape[attrs["axis"] + 1:])],
         lambda attrs, x, like: [np.take(x, np.arange(x.shape[attrs["axis"]] - like.shape[attrs["like_axis"]],
                                                      x.shape[attrs["axis"]]), axis=attrs["axis"])])
def _dropped(dim, count: int):
    return max(dim - count, 0) if isinstance(dim, int) else f"max({dim}-{count},0)"


def _kept(dim, count: int):
    """min(dim, count), known to be `count` when dim is `count` plus a length."""
    if isinstance(dim, int):
        return min(dim, count)
    return count if dim.startswith(f"{count}+") else f"min({dim},{count})"


# drop_last(x) attrs axis, count: all but the last `count` entries along axis (none when there are fewer)
register("drop_last", (1, 1), lambda attrs, t: [t[0].with_shape(
             t[0].shape[:attrs["axis"]] + (_dropped(t[0].shape[attrs["axis"]], attrs["count"]),)
             + t[0].shape[attrs["axis"] + 1:])],
         lambda attrs, x: [np.take(x, np.arange(max(x.shape[attrs["axis"]] - attrs["count"], 0)), axis=attrs["axis"])])
def _last_count(x, count, axis: int):
    count = int(count)
    return np.take(x, np.arange(x.shape[axis] - count if 0 < count < x.shape[axis] else 0, x.shape[axis]), axis=axis)


# last_count(x, count) attrs axis: the last `count` (an int64 scalar) entries along axis; all when count is 0
# or exceeds them (Hugging Face's logits_to_keep)
register("last_count", (2, 2), lambda attrs, t: [t[0].with_shape(
             t[0].shape[:attrs["axis"]] + (f"kept_{t[0].shape[attrs['axis']]}",) + t[0].shape[attrs["axis"] + 1:])],
         lambda attrs, x, count: [_last_count(x, count, attrs["axis"])])
# keep_last(x) attrs axis, count: the last `count` entries along axis (all of them when there are fewer)
register("keep_last", (1, 1), lambda attrs, t: [t[0].with_shape(
             t[0].shape[:attrs["axis"]] + (_kept(t[0].shape[attrs["axis"]], attrs["count"]),)
             + t[0].shape[attrs["axis"] + 1:])],
         lambda attrs, x: [np.take(x, np.arange(max(x.shape[attrs["axis"]] - attrs["count"], 0),
                                                x.shape[attrs["axis"]]), axis=attrs["axis"])])
