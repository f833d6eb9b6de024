"""ONNX lowering of dense attention: the opset-23 `Attention` op, or MatMul / Softmax / MatMul below
it, and its explicit parts (scores, the causal mask, the weighted values) for the IR ops that keep
them apart. The `attention` op itself is lower/attention.py's, which takes this lowering unless a
long-input one applies.

The portable attention below opset 23 is the decomposed MatMul/Softmax/MatMul form; key/value
heads are broadcast to the query heads for grouped-query attention, and causality is a bottom-right
aligned mask built from Range, so it holds when the key length exceeds the query length.
"""
from __future__ import annotations

import numpy as np

from .common import length_of
from .patterns import pattern_allowed, pattern_repeats
from .registry import lowers


def emit_causal_allowed(e, q: str, k: str, lengths: tuple, key_axis: int = 2) -> str:
    """bool (S, T): key j is visible to query i when j <= i + (T - S) (bottom-right aligned).
    Made once per pair of symbolic lengths and shared by every layer. S is q's axis 2, T is k's
    `key_axis` (2 for keys, 3 for scores)."""
    if lengths in e.memo:
        return e.memo[lengths]
    s, t = length_of(e, q, 2), length_of(e, k, key_axis)
    rows = e.node1("Add", e.node1("Range", e.const(0), s, e.const(1)), e.node1("Sub", t, s))
    rows = e.node1("Unsqueeze", rows, e.const([1]))
    cols = e.node1("Range", e.const(0), t, e.const(1))
    e.memo[lengths] = e.node1("LessOrEqual", cols, rows, label="CausalMask")
    return e.memo[lengths]


def emit_standard_attention(e, attrs, inputs, types, label):
    """The opset-23 `Attention` op, or MatMul / Softmax / MatMul below it."""
    q, k, v, *bias = inputs
    if attrs.get("pattern") is not None:  # dense lowering of a sparse pattern: a mask bias
        allowed = pattern_allowed(e, attrs["pattern"], lambda: (length_of(e, q, 2), length_of(e, k, 2)),
                                  (types[0].shape[2], types[1].shape[2]))
        counted = pattern_repeats(e, attrs["pattern"], lambda: (length_of(e, q, 2), length_of(e, k, 2)),
                                  (types[0].shape[2], types[1].shape[2]))
        masked = e.node1("Where", allowed, e.const(0.0, np.float32) if counted is None else counted, e.mask(),
                         label="SparsePattern")
        if bias:
            masked = e.node1("Max", e.node1("Add", bias[0], masked), e.mask())
        bias = [masked]
        types = list(types[:3]) + [types[0].with_shape((1, 1) + types[0].shape[2:3] + types[1].shape[2:3])]
    same_length = types[0].shape[2] == types[1].shape[2]
    lengths = ("causal", types[0].shape[2], types[1].shape[2])
    if e.opset >= 23:
        if attrs["causal"] and not same_length:  # is_causal is top-left aligned without a cache
            allowed = emit_causal_allowed(e, q, k, lengths)
            masked = e.node1("Where", allowed, e.const(0.0, np.float32), e.mask())
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


def by_key_heads(e, x: str, heads: int, kv_heads: int) -> str:
    """(B, H, S, N) -> (B, Hkv, G·S, N): the query heads a key/value head serves as its rows, so
    grouped-query attention multiplies each key/value head once instead of copying it G times (at
    each decoding step that copy would be the whole cache). Query head h is (h // G, h % G)."""
    return x if kv_heads == heads else e.node1("Reshape", x, e.const([0, kv_heads, -1, 0]))


def by_query_heads(e, x: str, heads: int, kv_heads: int) -> str:
    """by_key_heads undone: (B, Hkv, G·S, N) -> (B, H, S, N)."""
    return x if kv_heads == heads else e.node1("Reshape", x, e.const([0, heads, -1, 0]))


@lowers("attention_scores")
def emit_scores(e, attrs, inputs, types, label="Scores"):
    q, k = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    scores = e.node1("MatMul", by_key_heads(e, q, heads, kv_heads), e.node1("Transpose", k, perm=[0, 1, 3, 2]))
    scores = by_query_heads(e, scores, heads, kv_heads)
    scores = e.node1("Mul", scores, e.const(attrs["scale"], np.float32), label=label)
    if attrs.get("softcap"):
        cap = e.const(attrs["softcap"], np.float32)
        scores = e.node1("Mul", e.node1("Tanh", e.node1("Div", scores, cap)), cap, label="Softcap")
    return [scores]


def emit_hide_future(e, scores: str, lengths: tuple, label: str = "") -> str:
    allowed = emit_causal_allowed(e, scores, scores, lengths, key_axis=3)
    return e.node1("Where", allowed, scores, e.mask(), label=label or "Causal")


@lowers("attention_context")
def emit_context(e, attrs, inputs, types, label="Context"):
    probs, v = inputs
    heads, kv_heads = types[0].shape[1], types[1].shape[1]
    context = e.node1("MatMul", by_key_heads(e, probs, heads, kv_heads), v, label=label or "Context")
    return [by_query_heads(e, context, heads, kv_heads)]
