"""ONNX lowering of the attention ops: the fused attention (opset-23 `Attention` or MatMul /
Softmax / MatMul), the explicit parts (scores, masks, context), the masks and biases built from
position grids, and the canonical linearised and ProbSparse attentions. Shared helpers (lengths,
reductions, head repetition) come from tfcompiler.lower.ops.

The portable attention below opset 23 is the decomposed MatMul/Softmax/MatMul form; key/value
heads are broadcast to the query heads for grouped-query attention, and causality is a bottom-right
aligned mask built from Range, so it holds when the key length exceeds the query length.
"""
from __future__ import annotations

import numpy as np

from ..ir.ops.nn import MASKED
from .linear_chunks import causal_linear_attention
from .ops import ONNX_DTYPES, _length, _reduce, _repeat_heads, gather_rows, spaced_real
from .ort_kernels import recurrent_linear_attention
from .patterns import pattern_allowed


def emit_padding_bias(e, attrs, inputs, types, label):
    padded = e.node1("Equal", inputs[0], e.const(0))
    bias = e.node1("Where", padded, e.const(MASKED, np.float32), e.const(0.0, np.float32))
    return [e.node1("Unsqueeze", bias, e.const([1, 2]), label=label or "PaddingBias")]


def emit_causal_allowed(e, q: str, k: str, lengths: tuple, key_axis: int = 2) -> str:
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


def emit_attention(e, attrs, inputs, types, label):
    """The target's lowering for long inputs where it has one that applies
    (tfcompiler.lower.long_inputs), the standard lowering otherwise."""
    return (emit_long_input_attention(e, attrs, inputs, types, label)
            or emit_standard_attention(e, attrs, inputs, types, label))


def emit_standard_attention(e, attrs, inputs, types, label):
    """The opset-23 `Attention` op, or MatMul / Softmax / MatMul below it."""
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
            allowed = emit_causal_allowed(e, q, k, lengths)
            masked = e.node1("Where", allowed, e.const(0.0, np.float32), e.const(MASKED, np.float32))
            bias = [e.node1("Add", bias[0], masked)] if bias else [masked]
        elif bias and types[3].shape[2] == 1:  # ORT's kernel wants the mask's query axis spelled out
            rows = e.node1("Concat", e.const([1, 1]), e.node1("Shape", q, start=2, end=3), e.const([1]), axis=0)
            bias = [e.node1("Expand", bias[0], rows)]
        softcap = {"softcap": float(attrs["softcap"])} if attrs.get("softcap") else {}
        return [e.node1("Attention", q, k, v, *bias, scale=float(attrs["scale"]), **softcap,
                        is_causal=int(attrs["causal"] and same_length), label=label or "Attention")]
    e.miss_below("Attention", 23)
    (scores,) = emit_scores(e, attrs, [q, k], types[:2], "Scores")
    if bias:
        scores = e.node1("Add", scores, bias[0])
    if attrs["causal"]:
        scores = emit_hide_future(e, scores, lengths)
    probs = e.node1("Softmax", scores, axis=-1)
    return emit_context(e, attrs, [probs, v], [types[0], types[2]], label or "Attention")


def emit_scores(e, attrs, inputs, types, label="Scores"):
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


def emit_hide_future(e, scores: str, lengths: tuple, label: str = "") -> str:
    allowed = emit_causal_allowed(e, scores, scores, lengths, key_axis=3)
    return e.node1("Where", allowed, scores, e.const(MASKED, np.float32), label=label or "Causal")


def emit_pattern_mask(e, attrs, inputs, types, label):
    (scores,) = inputs
    allowed = pattern_allowed(e, attrs["pattern"], lambda: (_length(e, scores, 2), _length(e, scores, 3)),
                              (types[0].shape[2], types[0].shape[3]))
    return [e.node1("Where", allowed, scores, e.const(MASKED, np.float32), label=label or "SparsePattern")]


def emit_global_pattern_bias(e, attrs, inputs, types, label):
    (chosen,) = inputs
    s = _length(e, chosen, 1)
    allowed = pattern_allowed(e, attrs["pattern"], lambda: (s, s), (types[0].shape[1], types[0].shape[1]))
    chosen = e.node1("Cast", chosen, to=9)  # bool (B, S)
    allowed = e.node1("Or", e.node1("Unsqueeze", allowed, e.const([0])), e.node1("Unsqueeze", chosen, e.const([1])))
    if attrs["rows_see_all"]:
        allowed = e.node1("Or", allowed, e.node1("Unsqueeze", chosen, e.const([2])))
    return [e.node1("Where", e.node1("Unsqueeze", allowed, e.const([1])), e.const(0.0, np.float32),
                    e.const(MASKED, np.float32), label=label or "GlobalPatternBias")]


def emit_compressed_causal_bias(e, attrs, inputs, types, label):
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


def emit_causal_mask(e, attrs, inputs, types, label):
    return [emit_hide_future(e, inputs[0], ("causal", types[0].shape[2], types[0].shape[3]), label)]


def emit_context(e, attrs, inputs, types, label="Context"):
    probs, v = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    if kv_heads != heads:
        v = _repeat_heads(e, v, heads // kv_heads, heads, types[1].shape[3])
    return [e.node1("MatMul", probs, v, label=label or "Context")]


def emit_linear_attention(e, attrs, inputs, types, label):
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


def emit_prob_sparse_attention(e, attrs, inputs, types, label):
    """Sample counts from the lengths (Log/Ceil), the evenly spaced sample of the real keys (CumSum,
    ArgMax, GatherElements), the measure (ReduceMax/ReduceSum; padded queries at MASKED), TopK of
    the queries, their rows attended in full (GatherElements), scattered (ScatterElements) over the
    mean of the real values (their running sum, CumSum, when causal)."""
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
    if bias:
        real = e.node1("Cast", e.node1("Equal", bias[0], e.const(0.0, np.float32)), to=ONNX_DTYPES["int64"])
        keys = gather_rows(e, k, spaced_real(e, e.node1("Reshape", real, e.const([0, -1])), samples), width)
    else:
        picks = e.node1("Div", e.node1("Mul", e.node1("Range", e.const(0), samples, e.const(1)), t), samples)
        keys = e.node1("Gather", k, picks, axis=2)
    sampled = e.node1("MatMul", q, e.node1("Transpose", keys, perm=[0, 1, 3, 2]))
    total = e.node1("Div", _reduce(e, "ReduceSum", sampled, [-1], keepdims=False),
                    e.node1("Cast", t, to=ONNX_DTYPES["float32"]))
    measure = e.node1("Sub", _reduce(e, "ReduceMax", sampled, [-1], keepdims=False), total)
    offset = e.node1("Sub", t, s)  # queries sit at the end of the keys
    if bias:  # padded queries rank last
        queries_real = e.node1("Slice", real, e.node1("Reshape", offset, e.const([1])), e.const([2 ** 62]),
                               e.const([3]))
        padded_query = e.node1("Equal", e.node1("Squeeze", queries_real, e.const([2])), e.const(0))  # (B|1, 1, S)
        measure = e.node1("Where", padded_query, e.const(MASKED, np.float32), measure)
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


from .long_inputs import emit_long_input_attention  # noqa: E402  (it uses emit_standard_attention above)
