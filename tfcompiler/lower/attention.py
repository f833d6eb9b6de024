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
from .ops import ONNX_DTYPES, _length, _reduce, _repeat_heads, gather_rows, spaced_real, token_major
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
    """Where the target has them and they apply, for long inputs: onnxruntime's flash attention
    (bidirectional) or causal self-attention by query blocks; the standard lowering otherwise."""
    bias = inputs[3:]
    dense = attrs.get("pattern") is None and (not bias or types[3].shape[1:3] == (1, 1))  # at most key padding
    if (dense and not attrs["causal"] and e.can("MultiHeadAttention") and (e.max_length or FLASH_FROM) >= FLASH_FROM
            and not attrs.get("softcap") and types[0].shape[1] == types[1].shape[1]):
        return [emit_flash_attention(e, attrs, inputs, types, label)]
    if (dense and attrs["causal"] and e.can("CausalBlocks") and types[0].shape[2] == types[1].shape[2]
            and (e.max_length or CAUSAL_BLOCKS_FROM) >= CAUSAL_BLOCKS_FROM):
        return [emit_causal_blocks(e, attrs, inputs, types, label)]
    return emit_standard_attention(e, attrs, inputs, types, label)


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


# Keys from which the flash kernel beats the standard lowering (benchmarks/gate_crossover.py, heads
# of 64: 2.8% slower at 128 keys, 0.5% at 512, 2.5% faster at 1024, 7.8% at 2048; 1.3x at 4096)
FLASH_FROM = 1024


def emit_flash_attention(e, attrs, inputs, types, label):
    """onnxruntime's MultiHeadAttention, whose CPU kernel runs flash attention (memory linear in the
    length) when it gets token-major (B, S, H·d) inputs and no mask or bias. A key bias (B|1,1,1,T)
    usually holds only zeros (no padding in the batch): an `If` runs the kernel then, for
    FLASH_FROM keys or more, and the standard lowering with the bias otherwise. Models whose inputs
    stay shorter than FLASH_FROM (`max_length`) keep the standard lowering alone."""
    q, k, v, *bias = inputs
    heads, width, value_width = types[0].shape[1], types[0].shape[3], types[2].shape[3]

    def flash():
        out = e.node("MultiHeadAttention", [token_major(e, q, heads, width), token_major(e, k, heads, width),
                                            token_major(e, v, heads, value_width)],
                     domain="com.microsoft", num_heads=heads, scale=float(attrs["scale"]), label="FlashAttention")[0]
        return [e.node1("Transpose", e.node1("Reshape", out, e.const([0, 0, heads, value_width])), perm=[0, 2, 1, 3])]

    if not bias:
        return flash()[0]

    key = ("flash", bias[0], types[1].shape[2])  # one condition per bias and key length, for every layer
    if key not in e.memo:
        unpadded = e.node1("Equal", e.node1("ReduceMax", e.node1("Abs", bias[0]), keepdims=0),
                           e.const(0.0, np.float32))
        long_enough = e.node1("GreaterOrEqual", _length(e, k, 2), e.const(FLASH_FROM))
        e.memo[key] = e.node1("And", unpadded, long_enough, label="UseFlashAttention")
    standard = e.branch(lambda: emit_standard_attention(e, attrs, inputs, types, label))
    return e.node("If", [e.memo[key]], then_branch=e.branch(flash), else_branch=standard, label=label or "Attention")[0]


# Keys from which causal self-attention by query blocks beats the standard lowering on CPU
# (benchmarks/gate_crossover.py --kernel CausalBlocks, width 768 and 12 heads: 4.9% slower at 128
# keys, even at 512, 5.9% faster at 1024, 15.6% at 2048, 37% at 4096), and the block (256 queries:
# at 4096 keys 78 ms against 88 ms for 512 and 95 ms for 128, one attention of width 256)
CAUSAL_BLOCKS_FROM = 1024
CAUSAL_BLOCK = 256


def emit_causal_blocks(e, attrs, inputs, types, label):
    """Causal self-attention one query block at a time: a `Loop` over blocks of CAUSAL_BLOCK queries,
    each attending the keys up to its own end through the standard lowering, so the scores never
    exceed a block's rows (memory linear in the length) and the blocks above the diagonal are never
    computed (about half the score FLOPs; onnxruntime's CPU `Attention` kernel computes all S² and
    masks). An `If` takes it from CAUSAL_BLOCKS_FROM keys (a Loop costs about 0.3 ms per call); shorter
    inputs keep the standard lowering."""
    q, k, v, *bias = inputs
    block, s = CAUSAL_BLOCK, _length(e, q, 2)
    (b, heads, _, width), kv_shape = types[0].shape, types[1].shape
    block_types = [types[0].with_shape((b, heads, "block", width)), types[1].with_shape(kv_shape[:2] + ("keys",) + kv_shape[3:]),
                   types[2].with_shape(types[2].shape[:2] + ("keys",) + types[2].shape[3:]),
                   types[0].with_shape((types[3].shape[0] if bias else 1, 1, "block", "keys"))]

    def by_blocks():
        count = e.node1("Div", e.node1("Add", s, e.const(block - 1)), e.const(block))
        pad = e.node1("Reshape", e.node1("Sub", e.node1("Mul", count, e.const(block)), s), e.const([1]))
        padded = e.node1("Pad", q, e.node1("Concat", e.const([0] * 6), pad, e.const([0]), axis=0))

        def one_block(index):
            start = e.node1("Mul", index, e.const(block))
            end = e.node1("Reshape", e.node1("Min", e.node1("Add", start, e.const(block)), s), e.const([1]))
            rows = e.node1("Slice", padded, e.node1("Reshape", start, e.const([1])),
                           e.node1("Reshape", e.node1("Add", start, e.const(block)), e.const([1])), e.const([2]))
            keys, values = (e.node1("Slice", x, e.const([0]), end, e.const([2])) for x in (k, v))
            i = e.node1("Add", start, e.const(np.arange(block)[:, None]))
            visible = e.node1("LessOrEqual", e.node1("Range", e.const(0), e.node1("Squeeze", end, e.const([0])),
                                                      e.const(1)), i)  # (block, keys)
            key_bias = e.node1("Slice", bias[0], e.const([0]), end, e.const([3])) if bias else e.const(0.0, np.float32)
            mask = e.node1("Where", visible, key_bias, e.const(MASKED, np.float32))  # (B|1, 1, block, keys)
            if not bias:
                mask = e.node1("Unsqueeze", mask, e.const([0, 1]))
            return emit_standard_attention(e, {**attrs, "causal": False}, [rows, keys, values, mask], block_types,
                                           "BlockAttention")[0]

        stacked = e.loop(count, one_block, "CausalBlocks")  # (n, B, H, block, Dv)
        out = e.node1("Reshape", e.node1("Transpose", stacked, perm=[1, 2, 0, 3, 4]),
                      e.const([0, 0, -1, types[2].shape[3]]))
        return [e.node1("Slice", out, e.const([0]), e.node1("Reshape", s, e.const([1])), e.const([2]))]

    key = ("causal blocks", types[0].shape[2])  # one condition per length, shared by every layer
    if key not in e.memo:
        e.memo[key] = e.node1("GreaterOrEqual", s, e.const(CAUSAL_BLOCKS_FROM), label="UseCausalBlocks")
    missed = e.missed.copy()  # both branches miss the same fused forms: count them once
    blocked = e.branch(by_blocks)
    e.missed = missed
    standard = e.branch(lambda: emit_standard_attention(e, attrs, inputs, types, label))
    return e.node("If", [e.memo[key]], then_branch=blocked, else_branch=standard, label=label or "Attention")[0]


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
        queries_real = e.node1("Slice", real, e.node1("Reshape", offset, e.const([1])), e.const([2 ** 62]), e.const([3]))
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
