"""ONNX lowering of ProbSparse attention (tfcompiler.ir.ops.prob_sparse, Informer's): the queries
whose sampled scores peak most attend in full, the others take the mean (causal: the running sum) of
the values."""
from __future__ import annotations

import numpy as np

from .common import ONNX_DTYPES, gather_rows, length_of, reduce, repeat_heads, spaced_real
from .registry import lowers


@lowers("prob_sparse_attention")
def emit_prob_sparse_attention(e, attrs, inputs, types, label):
    """Sample counts from the lengths (Log/Ceil), the evenly spaced sample of the real keys (CumSum,
    ArgMax, GatherElements), the measure (ReduceMax/ReduceSum; padded queries at the mask), TopK of
    the queries, their rows attended in full (GatherElements), scattered (ScatterElements) over the
    mean of the real values (their running sum, CumSum, when causal)."""
    q, k, v, *bias = inputs
    heads, kv_heads, width, value_width = types[0].shape[1], types[1].shape[1], types[0].shape[3], types[2].shape[3]
    if kv_heads != heads:
        k = repeat_heads(e, k, heads // kv_heads, heads, width)
        v = repeat_heads(e, v, heads // kv_heads, heads, value_width)
    s, t = length_of(e, q, 2), length_of(e, k, 2)

    hugging_face = attrs.get("counts") == "hugging_face"

    def count(length):  # min(factor·⌈ln L⌉, L) (Hugging Face's: ⌈ln(1 + L)⌉), at least 1
        real = e.node1("Cast", length, to=ONNX_DTYPES["float32"])
        if hugging_face:
            real = e.node1("Add", real, e.const(1.0, np.float32))
        logs = e.node1("Ceil", e.node1("Log", real))
        n = e.node1("Mul", e.node1("Cast", logs, to=ONNX_DTYPES["int64"]), e.const(attrs["factor"]))
        return e.node1("Max", e.node1("Min", n, length), e.const(1))

    samples = t if hugging_face else count(t)  # Hugging Face's measure reads every key
    if bias:
        real = e.node1("Cast", e.node1("Equal", bias[0], e.const(0.0, np.float32)), to=ONNX_DTYPES["int64"])
        keys = gather_rows(e, k, spaced_real(e, e.node1("Reshape", real, e.const([0, -1])), samples), width)
    else:
        picks = e.node1("Div", e.node1("Mul", e.node1("Range", e.const(0), samples, e.const(1)), t), samples)
        keys = e.node1("Gather", k, picks, axis=2)
    sampled = e.node1("MatMul", q, e.node1("Transpose", keys, perm=[0, 1, 3, 2]))
    total = e.node1("Div", reduce(e, "ReduceSum", sampled, [-1], keepdims=False),
                    e.node1("Cast", t, to=ONNX_DTYPES["float32"]))
    measure = e.node1("Sub", reduce(e, "ReduceMax", sampled, [-1], keepdims=False), total)
    offset = e.node1("Sub", t, s)  # queries sit at the end of the keys
    if bias:  # padded queries rank last
        queries_real = e.node1("Slice", real, e.node1("Reshape", offset, e.const([1])), e.const([2 ** 62]),
                               e.const([3]))
        padded_query = e.node1("Equal", e.node1("Squeeze", queries_real, e.const([2])), e.const(0))  # (B|1, 1, S)
        measure = e.node1("Where", padded_query, e.mask(), measure)
    top = e.node(
        "TopK", [measure, e.node1("Reshape", count(s), e.const([1]))], n_outputs=2, axis=-1, largest=1, sorted=1)[1]
    rows = e.node1("Concat", e.node1("Shape", top), e.const([width]), axis=0)
    index = e.node1("Expand", e.node1("Unsqueeze", top, e.const([3])), rows)
    chosen = e.node1("GatherElements", q, index, axis=2)
    scores = e.node1("Mul", e.node1("MatMul", chosen, e.node1("Transpose", k, perm=[0, 1, 3, 2])),
                     e.const(attrs["scale"], np.float32))
    if bias:
        scores = e.node1("Add", scores, bias[0])
        keep = e.node1("Cast", e.node1("Equal", bias[0], e.const(0.0, np.float32)), to=ONNX_DTYPES["float32"])
    else:  # every key real (a model without a padding mask)
        keep = e.const(np.ones((1, 1, 1, 1)), np.float32)
    if attrs.get("causal"):
        after = e.node1("Greater", e.node1("Range", e.const(0), t, e.const(1)),
                        e.node1("Unsqueeze", e.node1("Add", top, offset), e.const([3])))
        scores = e.node1("Where", after, e.mask(), scores)
    updates = e.node1("MatMul", e.node1("Softmax", scores, axis=-1), v)
    keep_t = e.node1("Transpose", keep, perm=[0, 1, 3, 2])  # (B|1, 1, T, 1)
    full = e.node1("Concat", e.node1("Shape", q, start=0, end=3), e.const([value_width]), axis=0)
    if attrs.get("causal"):  # the running sum of the real values
        running = e.node1("CumSum", e.node1("Mul", v, keep_t), e.const(2))
        lazy = e.node1("Slice", running, e.node1("Reshape", offset, e.const([1])), e.const([2 ** 62]), e.const([2]))
    elif bias:  # the mean of the real values
        lazy = e.node1("Div", reduce(e, "ReduceSum", e.node1("Mul", v, keep_t), [2]),
                       e.node1("Max", reduce(e, "ReduceSum", keep_t, [2]), e.const(1.0, np.float32)))
    else:  # every key real: (1, 1, 1, 1) ones would count one value, not T
        lazy = reduce(e, "ReduceMean", v, [2])
    value_rows = e.node1("Expand", e.node1("Unsqueeze", top, e.const([3])),
                         e.node1("Concat", e.node1("Shape", top), e.const([value_width]), axis=0))
    return [e.node1("ScatterElements", e.node1("Expand", lazy, full), value_rows, updates, axis=2,
                    label=label or "ProbSparseAttention")]
