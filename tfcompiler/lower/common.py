"""What the lowerings share: the ONNX dtype of every IR dtype and small emitting helpers (a length,
a reduction over axes, head repetition, layouts, the padding and blocks of the chunked lowerings). A
leaf: it imports no lowering module, so any of them can import it."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto


ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
               "bfloat16": TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
               "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "bool": TensorProto.BOOL}


def length_of(e, x: str, axis: int) -> str:
    """The scalar int64 size of x along axis."""
    return e.node1("Squeeze", e.node1("Shape", x, start=axis, end=axis + 1), e.const([0]))


def reduce(e, op_type: str, x: str, axes, keepdims: bool = True, label: str = "") -> str:
    """ReduceX with its axes as an input from opset 18 (ReduceSum from 13), as an attribute before."""
    if op_type == "ReduceSum" and e.opset >= 13 or e.opset >= 18:
        return e.node1(op_type, x, e.const(list(axes)), keepdims=int(keepdims), label=label or op_type)
    return e.node1(op_type, x, axes=list(axes), keepdims=int(keepdims), label=label or op_type)


def repeat_heads(e, x: str, group: int, heads: int, width: int) -> str:
    """(B, Hkv, T, Dh) -> (B, Hkv*group, T, Dh), each key/value head serving `group` query heads."""
    x = e.node1("Unsqueeze", x, e.const([2]))
    x = e.node1("Expand", x, e.const([1, 1, group, 1, 1]))
    return e.node1("Reshape", x, e.const([0, heads, -1, width]))


def for_query_heads(e, x: str, x_type, heads: int) -> str:
    """A (B, Hkv, T, D) key or value tensor with one head per query head: itself when Hkv = heads,
    else each key/value head repeated for the query heads it serves."""
    kv_heads = x_type.shape[1]
    return x if kv_heads == heads else repeat_heads(e, x, heads // kv_heads, heads, x_type.shape[3])


def token_major(e, x: str, heads: int, last: int) -> str:
    """(B, H, S, last) -> (B, S, H·last), the layout the projections made (onnxruntime cancels the
    Transpose with the one that split the heads)."""
    return e.node1("Reshape", e.node1("Transpose", x, perm=[0, 2, 1, 3]), e.const([0, 0, heads * last]))


def spaced_real(e, real: str, count) -> str:
    """int64 (B|1, S) 0/1 -> (B|1, count) the positions of the ⌊r·n/count⌋-th real entries (n real
    in a row; tfcompiler.ir.ops.nn.spaced_real): the first position whose running count exceeds it."""
    ranks = e.const(np.arange(count)[None, :]) if isinstance(count, int) else \
        e.node1("Unsqueeze", e.node1("Range", e.const(0), count, e.const(1)), e.const([0]))
    targets = e.node1("Div", e.node1("Mul", ranks, reduce(e, "ReduceSum", real, [1])),
                      count if not isinstance(count, int) else e.const(count))
    past = e.node1("Greater", e.node1("Unsqueeze", e.node1("CumSum", real, e.const(1)), e.const([1])),
                   e.node1("Unsqueeze", targets, e.const([2])))  # (B|1, count, S)
    return e.node1("ArgMax", e.node1("Cast", past, to=TensorProto.INT32), axis=2, keepdims=0)


def gather_rows(e, x: str, rows: str, last: int) -> str:
    """x (B,H,S,last), rows int64 (B|1, N) -> (B,H,N,last): the same rows for every head."""
    shape = e.node1("Concat", e.node1("Shape", x, start=0, end=2), e.node1("Shape", rows, start=1, end=2),
                    e.const([last]), axis=0)
    return e.node1("GatherElements", x, e.node1("Expand", e.node1("Unsqueeze", rows, e.const([1, 3])), shape), axis=2)


def padding_to(e, length: str, size: int) -> str:
    """The scalar int64 count of positions that pad `length` to a whole number of `size`s."""
    return e.node1("Mod", e.node1("Sub", e.const(size), e.node1("Mod", length, e.const(size))), e.const(size))


def pad_end(e, x: str, amount: str, axis: int, rank: int, value: str | None = None, front: bool = False) -> str:
    """x (of rank `rank`) with `amount` (scalar int64) more entries at the end of `axis` (at its
    front with ``front``): zeros, or the scalar `value`."""
    before = axis if front else rank + axis  # ONNX Pad's pads: every axis' start, then every axis' end
    pads = e.node1("Concat", e.const([0] * before), e.node1("Reshape", amount, e.const([1])),
                   e.const([0] * (2 * rank - before - 1)), axis=0)
    return e.node1("Pad", x, pads, *([value] if value else []))


def block_rows(e, x: str, index: str, size: int, axis: int) -> str:
    """Block `index` (scalar int64, a Loop's iteration) of `size` entries of x along `axis`; the last
    block is shorter where x does not fill it."""
    start = e.node1("Reshape", e.node1("Mul", index, e.const(size)), e.const([1]))
    return e.node1("Slice", x, start, e.node1("Add", start, e.const([size])), e.const([axis]))


def unstack_blocks(e, stacked: str, width: int, length: str, label: str = "") -> str:
    """A Loop's stacked blocks of rows (n, B, H, block, width) -> (B, H, length, width): the blocks
    back in sequence order, the padding after `length` (scalar int64) cut off."""
    rows = e.node1("Reshape", e.node1("Transpose", stacked, perm=[1, 2, 0, 3, 4]), e.const([0, 0, -1, width]))
    return e.node1("Slice", rows, e.const([0]), e.node1("Reshape", length, e.const([1])), e.const([2]), label=label)
