"""IR op -> ONNX nodes, one emitter per op, chosen by opset where the standard gained a better op
(Gelu at 20, RMSNormalization and Attention at 23), and the EMITTERS table that maps every IR op to
its emitter. Every emitter keeps the batch and sequence axes dynamic. The attention emitters live in
tfcompiler.lower.attention, the blocked, content-based, recurrent and kernel lowerings in their own
modules; the helpers they share (lengths, reductions, head repetition) are here.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from .emit import Emitter

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
               "bfloat16": TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
               "int8": TensorProto.INT8, "uint8": TensorProto.UINT8, "bool": TensorProto.BOOL}

_DIRECT = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "neg": "Neg",
           "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "sqrt": "Sqrt", "exp": "Exp",
           "sin": "Sin", "cos": "Cos", "abs": "Abs", "log": "Log", "elu": "Elu", "equal": "Equal", "less": "Less",
           "where": "Where",
           "matmul": "MatMul"}


def emit_op(e: Emitter, op, inputs: list[str], in_types, label: str) -> list[str]:
    """Lower one IR node; returns the ONNX names of its outputs."""
    if op.type in _DIRECT:
        return [e.node1(_DIRECT[op.type], *inputs, label=label or _DIRECT[op.type])]
    return EMITTERS[op.type](e, op.attrs, inputs, in_types, label)


def _silu(e, attrs, inputs, types, label):
    return [e.node1("Mul", inputs[0], e.node1("Sigmoid", inputs[0]), label=label or "SiLU")]


def _gelu(e, attrs, inputs, types, label):
    approximate = attrs.get("approximate", "none")
    (x,) = inputs
    kernel = "FastGelu" if approximate == "tanh" else "Gelu"
    if e.can(kernel):  # onnxruntime then folds a preceding bias add in (BiasGelu, FastGelu's bias)
        return [e.node(kernel, [x], domain="com.microsoft", label=label or kernel)[0]]
    if e.opset >= 20:
        return [e.node1("Gelu", x, approximate=approximate, label=label or "Gelu")]
    e.miss_below("Gelu", 20)
    if approximate == "tanh":  # 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))
        cube = e.node1("Mul", e.node1("Mul", x, x), x)
        inner = e.node1("Add", x, e.node1("Mul", cube, e.const(0.044715, np.float32)))
        t = e.node1("Tanh", e.node1("Mul", inner, e.const(math.sqrt(2 / math.pi), np.float32)))
    else:  # 0.5 x (1 + erf(x / √2))
        t = e.node1("Erf", e.node1("Mul", x, e.const(1 / math.sqrt(2), np.float32)))
    half_x = e.node1("Mul", x, e.const(0.5, np.float32))
    return [e.node1("Mul", half_x, e.node1("Add", t, e.const(1.0, np.float32)), label=label or "Gelu")]


def _cast(e, attrs, inputs, types, label):
    return [e.node1("Cast", inputs[0], to=ONNX_DTYPES[attrs["dtype"]], label=label or "Cast")]


def _transpose(e, attrs, inputs, types, label):
    return [e.node1("Transpose", inputs[0], perm=list(attrs["perm"]), label=label or "Transpose")]


def _reshape(e, attrs, inputs, types, label):
    return [e.node1("Reshape", inputs[0], e.const(list(attrs["shape"])), label=label or "Reshape")]


def _gather(e, attrs, inputs, types, label):
    return [e.node1("Gather", *inputs, axis=attrs.get("axis", 0), label=label or "Gather")]


def _concat(e, attrs, inputs, types, label):
    return [e.node1("Concat", *inputs, axis=attrs["axis"], label=label or "Concat")]


def _split(e, attrs, inputs, types, label):
    return e.node("Split", [inputs[0], e.const(list(attrs["sizes"]))], n_outputs=len(attrs["sizes"]),
                  axis=attrs["axis"], label=label or "Split")


def _unsqueeze(e, attrs, inputs, types, label):
    return [e.node1("Unsqueeze", inputs[0], e.const(list(attrs["axes"])), label=label or "Unsqueeze")]


def _length(e, x: str, axis: int) -> str:
    """The scalar int64 size of x along axis."""
    return e.node1("Squeeze", e.node1("Shape", x, start=axis, end=axis + 1), e.const([0]))


def _positions(e, attrs, inputs, types, label):
    offset = attrs.get("offset", 0)
    end = e.node1("Add", _length(e, inputs[0], attrs.get("axis", 1)), e.const(offset))
    positions = e.node1("Range", e.const(offset), end, e.const(1))
    return [e.node1("Unsqueeze", positions, e.const([0]), label=label or "Positions")]


def _softmax(e, attrs, inputs, types, label):
    return [e.node1("Softmax", inputs[0], axis=attrs.get("axis", -1), label=label or "Softmax")]


def _layer_norm(e, attrs, inputs, types, label):
    return [e.node1("LayerNormalization", *inputs, axis=-1, epsilon=attrs["epsilon"],
                    label=label or "LayerNorm")]


def _skip_norm(e, attrs, inputs, types, label):
    x, skip, *params = inputs
    kernel = "SkipLayerNormalization" if attrs["kind"] == "layer_norm" else "SkipSimplifiedLayerNormalization"
    if e.can(kernel):
        outputs = e.node(kernel, [x, skip, *params], n_outputs=4, domain="com.microsoft",
                         epsilon=attrs["epsilon"], label=label or kernel)
        return [outputs[0], outputs[3]]  # the norm, and the sum (input_skip_bias_sum)
    total = e.node1("Add", x, skip, label="Residual")
    norm = _layer_norm if attrs["kind"] == "layer_norm" else _rms_norm
    return [norm(e, attrs, [total, *params], types[:1] + types[2:], label)[0], total]


def _keep_fp32(e, attrs, inputs, types, label):
    return [e.fp32(inputs[0])]


def _rms_norm(e, attrs, inputs, types, label):
    x, scale = inputs
    if e.opset >= 23:
        return [e.node1("RMSNormalization", x, scale, axis=-1, epsilon=attrs["epsilon"],
                        label=label or "RMSNorm")]
    e.miss_below("RMSNormalization", 23)
    x = e.fp32(x)
    mean = _reduce(e, "ReduceMean", e.node1("Mul", x, x), [-1])
    rms = e.node1("Sqrt", e.node1("Add", mean, e.const(attrs["epsilon"], np.float32)))
    return [e.node1("Mul", e.node1("Div", x, rms), scale, label=label or "RMSNorm")]


def _drop_last(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([0]), e.const([-attrs["count"]]), e.const([attrs["axis"]]),
                    label=label or "DropLast")]


def _leading(e, attrs, inputs, types, label):
    x, like = inputs
    return [e.node1("Slice", x, e.const([0]),
                    e.node1("Shape", like, start=attrs["like_axis"], end=attrs["like_axis"] + 1),
                    e.const([attrs["axis"]]), label=label or "Leading")]


def _keep_last(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([-attrs["count"]]), e.const([2 ** 62]), e.const([attrs["axis"]]),
                    label=label or "KeepLast")]


def token_major(e, x: str, heads: int, last: int) -> str:
    """(B, H, S, last) -> (B, S, H·last), the layout the projections made (onnxruntime cancels the
    Transpose with the one that split the heads)."""
    return e.node1("Reshape", e.node1("Transpose", x, perm=[0, 2, 1, 3]), e.const([0, 0, heads * last]))


def spaced_real(e, real: str, count) -> str:
    """int64 (B|1, S) 0/1 -> (B|1, count) the positions of the ⌊r·n/count⌋-th real entries (n real
    in a row; tfcompiler.ir.ops.nn.spaced_real): the first position whose running count exceeds it."""
    ranks = e.const(np.arange(count)[None, :]) if isinstance(count, int) else \
        e.node1("Unsqueeze", e.node1("Range", e.const(0), count, e.const(1)), e.const([0]))
    targets = e.node1("Div", e.node1("Mul", ranks, _reduce(e, "ReduceSum", real, [1])),
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


def pad_end(e, x: str, amount: str, axis: int, rank: int, value: str | None = None) -> str:
    """x (of rank `rank`) with `amount` (scalar int64) more entries at the end of `axis`: zeros, or the
    scalar `value`."""
    pads = e.node1("Concat", e.const([0] * (rank + axis)), e.node1("Reshape", amount, e.const([1])),
                   e.const([0] * (rank - axis - 1)), axis=0)
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


def _reduce(e, op_type: str, x: str, axes, keepdims: bool = True, label: str = "") -> str:
    """ReduceX with its axes as an input from opset 18 (ReduceSum from 13), as an attribute before."""
    if op_type == "ReduceSum" and e.opset >= 13 or e.opset >= 18:
        return e.node1(op_type, x, e.const(list(axes)), keepdims=int(keepdims), label=label or op_type)
    return e.node1(op_type, x, axes=list(axes), keepdims=int(keepdims), label=label or op_type)


def _reduction(op_type):
    return lambda e, attrs, inputs, types, label: [_reduce(e, op_type, inputs[0], attrs["axes"],
                                                           attrs.get("keepdims", True), label)]


def _segment_means(e, attrs, inputs, types, label):
    """Pad to m·ceil(S/m), Reshape to (B,H,m,len,D), ReduceSum, divide by the kept counts."""
    x, keep = inputs
    m, width = attrs["segments"], types[0].shape[3]
    s = _length(e, x, 2)
    length = e.node1("Div", e.node1("Add", s, e.const(m - 1)), e.const(m))
    pad = e.node1("Sub", e.node1("Mul", length, e.const(m)), s)
    kept = e.node1("Mul", x, keep)
    sums = _reduce(e, "ReduceSum", e.node1("Reshape", pad_end(e, kept, pad, 2, 4), e.const([0, 0, m, -1, width])),
                   [3], keepdims=False)
    counts = e.node1("Expand", keep, e.node1("Concat", e.node1("Shape", keep, start=0, end=1),
                                                 e.const([1]), e.node1("Shape", x, start=2, end=3),
                                                 e.const([1]), axis=0))
    counts = _reduce(e, "ReduceSum", e.node1("Reshape", pad_end(e, counts, pad, 2, 4), e.const([0, 1, m, -1, 1])),
                     [3], keepdims=False)
    counts = e.node1("Max", counts, e.const(1.0, np.float32))
    return [e.node1("Div", sums, counts, label=label or "SegmentMeans")]


def _sequence_conv(e, attrs, inputs, types, label):
    x, weight = inputs
    heads, k = types[1].shape[0], types[1].shape[2]
    return [e.node1("Conv", x, weight, group=heads, kernel_shape=[k, 1], pads=[k // 2, 0, k // 2, 0],
                    label=label or "SequenceConv")]


def _repeat_heads(e, x: str, group: int, heads: int, width: int) -> str:
    """(B, Hkv, T, Dh) -> (B, Hkv*group, T, Dh), each key/value head serving `group` query heads."""
    x = e.node1("Unsqueeze", x, e.const([2]))
    x = e.node1("Expand", x, e.const([1, 1, group, 1, 1]))
    return e.node1("Reshape", x, e.const([0, heads, -1, width]))


def _rope_tables(e, attrs) -> tuple[str, str]:
    """cos and sin of every angle, (max_positions, R/2), made once per distinct rope setting."""
    from ..ir.ops.rope import rope_angles

    key = ("rope", attrs["rotary_dim"], attrs["base"], attrs.get("position_scale", 1.0), attrs["max_positions"])
    if key not in e.memo:
        angles = rope_angles(np.arange(attrs["max_positions"]), attrs["rotary_dim"], attrs["base"],
                             attrs.get("position_scale", 1.0))
        e.memo[key] = (e.const(np.cos(angles), np.float32), e.const(np.sin(angles), np.float32))
    return e.memo[key]


def _rope(e, attrs, inputs, types, label):
    x, positions = inputs
    cos, sin = _rope_tables(e, attrs)
    r, width = attrs["rotary_dim"], types[0].shape[3]
    if e.opset >= 23:
        batch_and_length = e.node1("Concat", e.node1("Shape", x, start=0, end=1),
                                   e.node1("Shape", x, start=2, end=3), axis=0)
        position_ids = e.node1("Expand", positions, batch_and_length)
        return [e.node1("RotaryEmbedding", x, cos, sin, position_ids, interleaved=int(attrs["interleaved"]),
                        rotary_embedding_dim=r if r < width else 0, label=label or "Rotary")]
    e.miss_below("RotaryEmbedding", 23)

    def cut(t, start, end, axis, step=1):
        return e.node1("Slice", t, e.const([start]), e.const([end]), e.const([axis]), e.const([step]))

    cos, sin = (e.node1("Unsqueeze", e.node1("Gather", table, positions), e.const([1])) for table in (cos, sin))
    rot = cut(x, 0, r, 3) if r < width else x  # (B, H, S, R); cos/sin (1|B, 1, S, R/2)
    if attrs["interleaved"]:
        pairs = e.node1("Reshape", rot, e.const([0, 0, 0, r // 2, 2]))
        a, b = cut(pairs, 0, 1, 4), cut(pairs, 1, 2, 4)
        cos, sin = (e.node1("Unsqueeze", t, e.const([4])) for t in (cos, sin))
    else:
        a, b = cut(rot, 0, r // 2, 3), cut(rot, r // 2, r, 3)
    first = e.node1("Sub", e.node1("Mul", a, cos), e.node1("Mul", b, sin))
    second = e.node1("Add", e.node1("Mul", b, cos), e.node1("Mul", a, sin))
    rotated = e.node1("Concat", first, second, axis=-1)
    if attrs["interleaved"]:
        rotated = e.node1("Reshape", rotated, e.const([0, 0, 0, r]))
    if r < width:
        rotated = e.node1("Concat", rotated, cut(x, r, width, 3), axis=3)
    return [e.node1("Identity", rotated, label=label or "Rotary")]


def _clip(e, attrs, inputs, types, label):
    """Bounds are consts of the input's own type (ONNX Clip needs them to match)."""
    dtype = {"int64": np.int64, "float32": np.float32, "float64": np.float64}[types[0].dtype]
    bounds = [e.const(attrs[b], dtype) if attrs.get(b) is not None else "" for b in ("low", "high")]
    while bounds and bounds[-1] == "":
        bounds.pop()
    return [e.node1("Clip", inputs[0], *bounds, label=label or "Clip")]


def _einsum(e, attrs, inputs, types, label):
    return [e.node1("Einsum", *inputs, equation=attrs["equation"], label=label or "Einsum")]


def _relative_distance(e, attrs, inputs, types, label):
    """n[i, j] = j - (i + T - S), from the two lengths, int64 (S, T); shared per pair of lengths."""
    key = ("distance", types[0].shape[2], types[1].shape[2])
    if key not in e.memo:
        q, k = inputs
        s, t = _length(e, q, 2), _length(e, k, 2)
        rows = e.node1("Add", e.node1("Range", e.const(0), s, e.const(1)), e.node1("Sub", t, s))
        cols = e.node1("Range", e.const(0), t, e.const(1))
        e.memo[key] = e.node1("Sub", cols, e.node1("Unsqueeze", rows, e.const([1])), label=label or "RelativeDistance")
    return [e.memo[key]]


def _distance_range(e, attrs, inputs, types, label):
    s, t = _length(e, inputs[0], 2), _length(e, inputs[1], 2)
    return [e.node1("Range", e.node1("Sub", e.const(1), s), t, e.const(1), label=label or "DistanceRange")]


def _distance_index(e, attrs, inputs, types, label):
    """S - 1 - n, from relative_distance's n."""
    (n,) = _relative_distance(e, {}, inputs, types, "")
    s_minus_1 = e.node1("Sub", _length(e, inputs[0], 2), e.const(1))
    return [e.node1("Sub", s_minus_1, n, label=label or "DistanceIndex")]


def _grid_conv(e, attrs, inputs, types, label):
    """Slice off the skipped tokens, Reshape to (B, rows, W, D), Transpose to NCHW, Conv(group=D),
    back, and Concat zeros for the skipped tokens."""
    x, weight, bias = inputs
    width, skip, d, k = attrs["grid_width"], attrs.get("skip", 0), types[0].shape[2], types[1].shape[2]
    grid = x
    if skip:
        grid = e.node1("Slice", x, e.const([skip]), e.const([2 ** 62]), e.const([1]))
    grid = e.node1("Transpose", e.node1("Reshape", grid, e.const([0, -1, width, d])), perm=[0, 3, 1, 2])
    conv = e.node1("Conv", grid, weight, bias, group=d, kernel_shape=[k, k], pads=[k // 2] * 4)
    out = e.node1("Reshape", e.node1("Transpose", conv, perm=[0, 2, 3, 1]), e.const([0, -1, d]))
    if skip:
        zeros = e.node1("Mul", e.node1("Slice", x, e.const([0]), e.const([skip]), e.const([1])),
                        e.const(0.0, np.float32))
        out = e.node1("Concat", zeros, out, axis=1)
    return [e.node1("Identity", out, label=label or "GridConv")]


def _compress(e, attrs, inputs, types, label):
    """Pad the sequence to a whole stride, Transpose to (B, C, T), Conv(kernel = stride = s,
    group), Transpose back."""
    x, weight, bias = inputs
    stride = attrs["stride"]
    t = _length(e, x, 1)
    channels_first = e.node1("Transpose", pad_end(e, x, padding_to(e, t, stride), 1, 3), perm=[0, 2, 1])
    conv = e.node1("Conv", channels_first, weight, bias, group=attrs["groups"], kernel_shape=[stride],
                   strides=[stride])
    return [e.node1("Transpose", conv, perm=[0, 2, 1], label=label or "Compress")]


def _tile_batch(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", like, start=0, end=1), e.node1("Shape", x, start=1), axis=0)
    return [e.node1("Expand", x, shape, label=label or "TileBatch")]


def _merge_outer(e, attrs, inputs, types, label):
    shape = e.node1("Concat", e.const([-1]), e.node1("Shape", inputs[0], start=2), axis=0)
    return [e.node1("Reshape", inputs[0], shape, label=label or "MergeOuter")]


def _split_outer(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", like, start=0, end=2), e.node1("Shape", x, start=1), axis=0)
    return [e.node1("Reshape", x, shape, label=label or "SplitOuter")]


def _take_relative(e, attrs, inputs, types, label):
    """GatherElements along the last axis, the (S, T) index expanded over x's leading axes."""
    x, index = inputs
    lead = e.node1("Shape", x, start=0, end=types[0].rank - 2)
    shape = e.node1("Concat", lead, e.node1("Shape", index), axis=0)
    return [e.node1("GatherElements", x, e.node1("Expand", index, shape), axis=-1,
                    label=label or "TakeRelative")]


# the lowerings below use the helpers above
from .blocked import banded_attention, block_sparse_attention, block_summary_attention  # noqa: E402
from .content_sparse import clustered_attention, lsh_attention, routing_attention  # noqa: E402
from .attention import (emit_attention, emit_causal_mask, emit_compressed_causal_bias, emit_context,  # noqa: E402
                        emit_global_pattern_bias, emit_linear_attention, emit_padding_bias, emit_pattern_mask,
                        emit_prob_sparse_attention, emit_scores)
from .recurrent import local_recurrent, recurrent  # noqa: E402
from .star import star_attention  # noqa: E402
from .favor import emit_favor_attention  # noqa: E402
from .quantized import int4_matmul, quantized_matmul  # noqa: E402
from .resample import (fold_grid, fold_windows, shift_right, shorten, spaced_distance_index,  # noqa: E402
                       spaced_distances, unfold_windows, upsample)

EMITTERS = {"keep_fp32": _keep_fp32, "silu": _silu, "gelu": _gelu, "cast": _cast, "transpose": _transpose,
            "reshape": _reshape,
            "gather": _gather, "concat": _concat, "split": _split, "unsqueeze": _unsqueeze, "positions": _positions,
            "softmax": _softmax, "layer_norm": _layer_norm, "rms_norm": _rms_norm, "skip_norm": _skip_norm,
            "padding_bias": emit_padding_bias, "attention": emit_attention, "rope": _rope,
            "attention_scores": emit_scores, "causal_mask": emit_causal_mask, "pattern_mask": emit_pattern_mask,
            "global_pattern_bias": emit_global_pattern_bias, "keep_last": _keep_last, "drop_last": _drop_last,
            "leading": _leading, "compressed_causal_bias": emit_compressed_causal_bias,
            "attention_context": emit_context,
            "clip": _clip, "einsum": _einsum, "relative_distance": _relative_distance,
            "take_relative": _take_relative, "distance_range": _distance_range,
            "distance_index": _distance_index, "grid_conv": _grid_conv,
            "banded_attention": banded_attention, "block_sparse_attention": block_sparse_attention,
            "block_summary_attention": block_summary_attention, "star_attention": star_attention,
            "recurrent": recurrent, "local_recurrent": local_recurrent,
            "lsh_attention": lsh_attention, "routing_attention": routing_attention,
            "clustered_attention": clustered_attention,
            "compress": _compress, "tile_batch": _tile_batch,
            "merge_outer": _merge_outer, "split_outer": _split_outer, "shorten": shorten, "upsample": upsample,
            "shift_right": shift_right, "fold_windows": fold_windows, "unfold_windows": unfold_windows,
            "fold_grid": fold_grid, "quantized_matmul": quantized_matmul, "int4_matmul": int4_matmul,
            "spaced_distances": spaced_distances, "spaced_distance_index": spaced_distance_index,
            "prob_sparse_attention": emit_prob_sparse_attention, "linear_attention": emit_linear_attention,
            "favor_attention": emit_favor_attention,
            "reduce_max": _reduction("ReduceMax"), "reduce_sum": _reduction("ReduceSum"),
            "reduce_mean": _reduction("ReduceMean"), "segment_means": _segment_means,
            "sequence_conv": _sequence_conv,
            "chunks_begin": lambda e, attrs, inputs, types, label: inputs}  # its region is lowered at chunks_end
