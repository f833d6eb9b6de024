"""IR op -> ONNX nodes, one emitter per op, chosen by opset where the standard gained a better op
(Gelu at 20, RMSNormalization and Attention at 23). Every emitter keeps the batch and sequence
axes dynamic.

The portable attention below opset 23 is the decomposed MatMul/Softmax/MatMul form; key/value
heads are broadcast to the query heads for grouped-query attention, and causality is a bottom-right
aligned mask built from Range, so it holds when the key length exceeds the query length.
"""
from __future__ import annotations

import math

import numpy as np
from onnx import TensorProto

from ..ir.ops.nn import MASKED
from .emit import Emitter
from .patterns import pattern_allowed

ONNX_DTYPES = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE, "float16": TensorProto.FLOAT16,
               "bfloat16": TensorProto.BFLOAT16, "int64": TensorProto.INT64, "int32": TensorProto.INT32,
               "bool": TensorProto.BOOL}

_DIRECT = {"add": "Add", "sub": "Sub", "mul": "Mul", "div": "Div", "pow": "Pow", "neg": "Neg",
           "relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "sqrt": "Sqrt", "exp": "Exp",
           "sin": "Sin", "cos": "Cos", "abs": "Abs", "log": "Log", "elu": "Elu", "equal": "Equal", "less": "Less", "where": "Where",
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
    if e.opset >= 20:
        return [e.node1("Gelu", x, approximate=approximate, label=label or "Gelu")]
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


def _rms_norm(e, attrs, inputs, types, label):
    x, scale = inputs
    if e.opset >= 23:
        return [e.node1("RMSNormalization", x, scale, axis=-1, epsilon=attrs["epsilon"],
                        label=label or "RMSNorm")]
    mean = _reduce(e, "ReduceMean", e.node1("Mul", x, x), [-1])
    rms = e.node1("Sqrt", e.node1("Add", mean, e.const(attrs["epsilon"], np.float32)))
    return [e.node1("Mul", e.node1("Div", x, rms), scale, label=label or "RMSNorm")]


def _padding_bias(e, attrs, inputs, types, label):
    padded = e.node1("Equal", inputs[0], e.const(0))
    bias = e.node1("Where", padded, e.const(MASKED, np.float32), e.const(0.0, np.float32))
    return [e.node1("Unsqueeze", bias, e.const([1, 2]), label=label or "PaddingBias")]


def _causal_allowed(e, q: str, k: str, lengths: tuple, key_axis: int = 2) -> str:
    """bool (S, T): key j is visible to query i when j <= i + (T - S) (bottom-right aligned).
    Made once per pair of symbolic lengths and shared by every layer. S is q's axis 2, T is k's
    `key_axis` (2 for keys, 3 for scores)."""
    if lengths in e.memo:
        return e.memo[lengths]
    s, t = _length(e, q, 2), _length(e, k, key_axis)
    rows = e.node1("Add", e.node1("Range", e.const(0), s, e.const(1)), e.node1("Sub", t, s))
    rows = e.node1("Unsqueeze", rows, e.const([1]))
    cols = e.node1("Range", e.const(0), t, e.const(1))
    e.memo[lengths] = e.node1("LessOrEqual", cols, rows, label="CausalMask")
    return e.memo[lengths]


def _attention(e, attrs, inputs, types, label):
    q, k, v, *bias = inputs
    if attrs.get("pattern") is not None:  # dense lowering of a sparse pattern: a mask bias
        allowed = pattern_allowed(e, attrs["pattern"], lambda: (_length(e, q, 2), _length(e, k, 2)),
                                  (types[0].shape[2], types[1].shape[2]))
        masked = e.node1("Where", allowed, e.const(0.0, np.float32), e.const(MASKED, np.float32),
                         label="SparsePattern")
        if bias:
            masked = e.node1("Max", e.node1("Add", bias[0], masked), e.const(MASKED, np.float32))
        bias = [masked]
        types = list(types[:3]) + [types[0].with_shape((1, 1) + types[0].shape[2:3] + types[1].shape[2:3])]
    same_length = types[0].shape[2] == types[1].shape[2]
    lengths = ("causal", types[0].shape[2], types[1].shape[2])
    if e.opset >= 23:
        if attrs["causal"] and not same_length:  # is_causal is top-left aligned without a cache
            allowed = _causal_allowed(e, q, k, lengths)
            masked = e.node1("Where", allowed, e.const(0.0, np.float32), e.const(MASKED, np.float32))
            bias = [e.node1("Add", bias[0], masked)] if bias else [masked]
        elif bias and types[3].shape[2] == 1:  # ORT's kernel wants the mask's query axis spelled out
            rows = e.node1("Concat", e.const([1, 1]), e.node1("Shape", q, start=2, end=3), e.const([1]), axis=0)
            bias = [e.node1("Expand", bias[0], rows)]
        softcap = {"softcap": float(attrs["softcap"])} if attrs.get("softcap") else {}
        return [e.node1("Attention", q, k, v, *bias, scale=float(attrs["scale"]), **softcap,
                        is_causal=int(attrs["causal"] and same_length), label=label or "Attention")]
    (scores,) = _scores(e, attrs, [q, k], types[:2], "Scores")
    if bias:
        scores = e.node1("Add", scores, bias[0])
    if attrs["causal"]:
        scores = _hide_future(e, scores, lengths)
    probs = e.node1("Softmax", scores, axis=-1)
    return _context(e, attrs, [probs, v], [types[0], types[2]], label or "Attention")


def _scores(e, attrs, inputs, types, label="Scores"):
    q, k = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    if kv_heads != heads:
        k = _repeat_heads(e, k, heads // kv_heads, heads, types[1].shape[3])
    scores = e.node1("MatMul", q, e.node1("Transpose", k, perm=[0, 1, 3, 2]))
    scores = e.node1("Mul", scores, e.const(attrs["scale"], np.float32), label=label)
    if attrs.get("softcap"):
        cap = e.const(attrs["softcap"], np.float32)
        scores = e.node1("Mul", e.node1("Tanh", e.node1("Div", scores, cap)), cap, label="Softcap")
    return [scores]


def _hide_future(e, scores: str, lengths: tuple, label: str = "") -> str:
    allowed = _causal_allowed(e, scores, scores, lengths, key_axis=3)
    return e.node1("Where", allowed, scores, e.const(MASKED, np.float32), label=label or "Causal")


def _pattern_mask(e, attrs, inputs, types, label):
    (scores,) = inputs
    allowed = pattern_allowed(e, attrs["pattern"], lambda: (_length(e, scores, 2), _length(e, scores, 3)),
                              (types[0].shape[2], types[0].shape[3]))
    return [e.node1("Where", allowed, scores, e.const(MASKED, np.float32), label=label or "SparsePattern")]


def _global_pattern_bias(e, attrs, inputs, types, label):
    (chosen,) = inputs
    s = _length(e, chosen, 1)
    allowed = pattern_allowed(e, attrs["pattern"], lambda: (s, s), (types[0].shape[1], types[0].shape[1]))
    chosen = e.node1("Cast", chosen, to=9)  # bool (B, S)
    allowed = e.node1("Or", e.node1("Unsqueeze", allowed, e.const([0])), e.node1("Unsqueeze", chosen, e.const([1])))
    if attrs["rows_see_all"]:
        allowed = e.node1("Or", allowed, e.node1("Unsqueeze", chosen, e.const([2])))
    return [e.node1("Where", e.node1("Unsqueeze", allowed, e.const([1])), e.const(0.0, np.float32),
                    e.const(MASKED, np.float32), label=label or "GlobalPatternBias")]


def _compressed_causal_bias(e, attrs, inputs, types, label):
    q, k = inputs
    stride = attrs["stride"]
    rows = e.node1("Unsqueeze", e.node1("Range", e.const(0), _length(e, q, 2), e.const(1)), e.const([1]))
    slot = e.node1("Sub", e.node1("Unsqueeze", e.node1("Range", e.const(0), _length(e, k, 2), e.const(1)),
                                  e.const([0])), e.const(attrs["leading"]))
    visible = e.node1("Or", e.node1("Less", slot, e.const(0)),
                      e.node1("LessOrEqual", e.node1("Add", e.node1("Mul", slot, e.const(stride)), e.const(stride - 1)),
                              rows))
    return [e.node1("Where", visible, e.const(0.0, np.float32), e.const(MASKED, np.float32),
                    label=label or "CompressedCausal")]


def _keep_last(e, attrs, inputs, types, label):
    return [e.node1("Slice", inputs[0], e.const([-attrs["count"]]), e.const([2 ** 62]), e.const([attrs["axis"]]),
                    label=label or "KeepLast")]


def _causal_mask(e, attrs, inputs, types, label):
    return [_hide_future(e, inputs[0], ("causal", types[0].shape[2], types[0].shape[3]), label)]


def _context(e, attrs, inputs, types, label="Context"):
    probs, v = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    if kv_heads != heads:
        v = _repeat_heads(e, v, heads // kv_heads, heads, types[1].shape[3])
    return [e.node1("MatMul", probs, v, label=label or "Context")]


def _linear_attention(e, attrs, inputs, types, label):
    """Bidirectional: phi_q (phi_kᵀ v) / (phi_q Σ phi_k): MatMul and ReduceSum, O(S·F·Dv).
    Causal (gated or not): onnxruntime's LinearAttention kernel where the target allows it, else in
    chunks (tfcompiler.lower.linear_chunks)."""
    q, k, v, *gate = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    if kv_heads != heads:
        k = _repeat_heads(e, k, heads // kv_heads, heads, types[1].shape[3])
        v = _repeat_heads(e, v, heads // kv_heads, heads, types[2].shape[3])
    eps = e.const(attrs.get("eps", 0.0), np.float32)
    if attrs["causal"]:
        widths = (types[0].shape[3], types[2].shape[3])
        if e.can("LinearAttention"):
            return [recurrent_linear_attention(e, q, k, v, gate[0] if gate else None, eps, widths, heads, label)]
        return [causal_linear_attention(e, q, k, v, gate[0] if gate else None, eps, widths, label)]
    numerator = e.node1("MatMul", q, e.node1("MatMul", e.node1("Transpose", k, perm=[0, 1, 3, 2]), v))
    denominator = e.node1("MatMul", q, e.node1("Transpose", _reduce(e, "ReduceSum", k, [2]), perm=[0, 1, 3, 2]))
    return [e.node1("Div", numerator, e.node1("Add", denominator, eps), label=label or "LinearAttention")]


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
    pad = e.node1("Reshape", e.node1("Sub", e.node1("Mul", length, e.const(m)), s), e.const([1]))
    amounts = e.node1("Concat", e.const([0, 0, 0, 0, 0, 0]), pad, e.const([0]), axis=0)
    kept = e.node1("Mul", x, keep)
    sums = _reduce(e, "ReduceSum", e.node1("Reshape", e.node1("Pad", kept, amounts), e.const([0, 0, m, -1, width])),
                   [3], keepdims=False)
    counts = e.node1("Expand", keep, e.node1("Concat", e.node1("Shape", keep, start=0, end=1),
                                                 e.const([1]), e.node1("Shape", x, start=2, end=3),
                                                 e.const([1]), axis=0))
    counts = _reduce(e, "ReduceSum", e.node1("Reshape", e.node1("Pad", counts, amounts), e.const([0, 1, m, -1, 1])),
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
    pad = e.node1("Mod", e.node1("Sub", e.const(stride), e.node1("Mod", t, e.const(stride))), e.const(stride))
    amounts = e.node1("Concat", e.const([0, 0, 0, 0]), e.node1("Reshape", pad, e.const([1])), e.const([0]), axis=0)
    channels_first = e.node1("Transpose", e.node1("Pad", x, amounts), perm=[0, 2, 1])
    conv = e.node1("Conv", channels_first, weight, bias, group=attrs["groups"], kernel_shape=[stride],
                   strides=[stride])
    return [e.node1("Transpose", conv, perm=[0, 2, 1], label=label or "Compress")]


def _tile_batch(e, attrs, inputs, types, label):
    x, like = inputs
    shape = e.node1("Concat", e.node1("Shape", like, start=0, end=1), e.node1("Shape", x, start=1), axis=0)
    return [e.node1("Expand", x, shape, label=label or "TileBatch")]


def _prob_sparse_attention(e, attrs, inputs, types, label):
    """Sample counts from the lengths (Log/Ceil), the evenly spaced key sample (Range/Div/Gather),
    the measure (ReduceMax/ReduceSum), TopK of the queries, their rows attended in full
    (GatherElements), scattered (ScatterElements) over the mean of the real values (their running
    sum, CumSum, when causal)."""
    q, k, v, *bias = inputs
    heads, kv_heads, width, value_width = types[0].shape[1], types[1].shape[1], types[0].shape[3], types[2].shape[3]
    if kv_heads != heads:
        k = _repeat_heads(e, k, heads // kv_heads, heads, width)
        v = _repeat_heads(e, v, heads // kv_heads, heads, value_width)
    s, t = _length(e, q, 2), _length(e, k, 2)

    def count(length):  # min(factor·⌈ln L⌉, L), at least 1
        logs = e.node1("Ceil", e.node1("Log", e.node1("Cast", length, to=ONNX_DTYPES["float32"])))
        n = e.node1("Mul", e.node1("Cast", logs, to=ONNX_DTYPES["int64"]), e.const(attrs["factor"]))
        return e.node1("Max", e.node1("Min", n, length), e.const(1))

    samples = count(t)
    picks = e.node1("Div", e.node1("Mul", e.node1("Range", e.const(0), samples, e.const(1)), t), samples)
    sampled = e.node1("MatMul", q, e.node1("Transpose", e.node1("Gather", k, picks, axis=2), perm=[0, 1, 3, 2]))
    total = e.node1("Div", _reduce(e, "ReduceSum", sampled, [-1], keepdims=False),
                    e.node1("Cast", t, to=ONNX_DTYPES["float32"]))
    measure = e.node1("Sub", _reduce(e, "ReduceMax", sampled, [-1], keepdims=False), total)
    top = e.node(
        "TopK", [measure, e.node1("Reshape", count(s), e.const([1]))], n_outputs=2, axis=-1, largest=1, sorted=1)[1]
    rows = e.node1("Concat", e.node1("Shape", top), e.const([width]), axis=0)
    index = e.node1("Expand", e.node1("Unsqueeze", top, e.const([3])), rows)
    chosen = e.node1("GatherElements", q, index, axis=2)
    scores = e.node1("Mul", e.node1("MatMul", chosen, e.node1("Transpose", k, perm=[0, 1, 3, 2])),
                     e.const(attrs["scale"], np.float32))
    keep = e.const(np.ones((1, 1, 1, 1), np.float32))
    if bias:
        scores = e.node1("Add", scores, bias[0])
        keep = e.node1("Cast", e.node1("Equal", bias[0], e.const(0.0, np.float32)), to=ONNX_DTYPES["float32"])
    offset = e.node1("Sub", t, s)  # queries sit at the end of the keys
    if attrs.get("causal"):
        after = e.node1("Greater", e.node1("Range", e.const(0), t, e.const(1)),
                        e.node1("Unsqueeze", e.node1("Add", top, offset), e.const([3])))
        scores = e.node1("Where", after, e.const(MASKED, np.float32), scores)
    updates = e.node1("MatMul", e.node1("Softmax", scores, axis=-1), v)
    keep_t = e.node1("Transpose", keep, perm=[0, 1, 3, 2])  # (B|1, 1, T, 1)
    full = e.node1("Concat", e.node1("Shape", q, start=0, end=3), e.const([value_width]), axis=0)
    if attrs.get("causal"):  # the running sum of the real values
        running = e.node1("CumSum", e.node1("Mul", v, keep_t), e.const(2))
        lazy = e.node1("Slice", running, e.node1("Reshape", offset, e.const([1])), e.const([2 ** 62]), e.const([2]))
    else:
        lazy = e.node1("Div", _reduce(e, "ReduceSum", e.node1("Mul", v, keep_t), [2]),
                       e.node1("Max", _reduce(e, "ReduceSum", keep_t, [2]), e.const(1.0, np.float32)))
    value_rows = e.node1("Expand", e.node1("Unsqueeze", top, e.const([3])),
                         e.node1("Concat", e.node1("Shape", top), e.const([value_width]), axis=0))
    return [e.node1("ScatterElements", e.node1("Expand", lazy, full), value_rows, updates, axis=2,
                    label=label or "ProbSparseAttention")]


def _take_relative(e, attrs, inputs, types, label):
    """GatherElements along the last axis, the (S, T) index expanded over x's leading axes."""
    x, index = inputs
    lead = e.node1("Shape", x, start=0, end=types[0].rank - 2)
    shape = e.node1("Concat", lead, e.node1("Shape", index), axis=0)
    return [e.node1("GatherElements", x, e.node1("Expand", index, shape), axis=-1,
                    label=label or "TakeRelative")]


from .blocked import banded_attention, block_sparse_attention, block_summary_attention  # noqa: E402  (they use the helpers above)
from .content_sparse import clustered_attention, lsh_attention, routing_attention  # noqa: E402
from .linear_chunks import causal_linear_attention  # noqa: E402
from .ort_kernels import recurrent_linear_attention  # noqa: E402
from .recurrent import local_recurrent, recurrent  # noqa: E402
from .star import star_attention  # noqa: E402

EMITTERS = {"silu": _silu, "gelu": _gelu, "cast": _cast, "transpose": _transpose, "reshape": _reshape,
            "gather": _gather, "concat": _concat, "unsqueeze": _unsqueeze, "positions": _positions,
            "softmax": _softmax, "layer_norm": _layer_norm, "rms_norm": _rms_norm,
            "padding_bias": _padding_bias, "attention": _attention, "rope": _rope,
            "attention_scores": _scores, "causal_mask": _causal_mask, "pattern_mask": _pattern_mask,
            "global_pattern_bias": _global_pattern_bias, "keep_last": _keep_last, "compressed_causal_bias": _compressed_causal_bias, "attention_context": _context,
            "clip": _clip, "einsum": _einsum, "relative_distance": _relative_distance,
            "take_relative": _take_relative, "distance_range": _distance_range,
            "distance_index": _distance_index, "grid_conv": _grid_conv,
            "banded_attention": banded_attention, "block_sparse_attention": block_sparse_attention,
            "block_summary_attention": block_summary_attention, "star_attention": star_attention,
            "recurrent": recurrent, "local_recurrent": local_recurrent,
            "lsh_attention": lsh_attention, "routing_attention": routing_attention,
            "clustered_attention": clustered_attention,
            "compress": _compress, "tile_batch": _tile_batch,
            "prob_sparse_attention": _prob_sparse_attention, "linear_attention": _linear_attention,
            "reduce_max": _reduction("ReduceMax"), "reduce_sum": _reduction("ReduceSum"),
            "reduce_mean": _reduction("ReduceMean"), "segment_means": _segment_means,
            "sequence_conv": _sequence_conv}
