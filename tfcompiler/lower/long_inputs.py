"""Attention for long inputs on targets whose standard `Attention` kernel computes and keeps all
S x T scores (onnxruntime's CPU kernel does): onnxruntime's flash kernel (com.microsoft
MultiHeadAttention, memory linear in the length; bidirectional, no bias) and attention by query
blocks (a `Loop` of the standard lowering over blocks of QUERY_BLOCK queries: the scores never exceed
one block's rows, and causal blocks attend only the keys up to their end, so nothing above the
diagonal is computed). Both pay from LONG_FROM keys; an `If` on the key length keeps shorter inputs
on the standard lowering, and models whose `max_length` stays shorter get neither:

    bidirectional, no bias:          flash
    bidirectional, key padding bias: If(long, If(no padding, flash, query blocks), standard)
    causal self-attention:           If(long, query blocks, standard)
"""
from __future__ import annotations

import numpy as np

from ..lengths import LONG_FROM
from .common import length_of, pad_end, padding_to, token_major, unstack_blocks
from .dense_attention import emit_standard_attention

# Queries per block: at 4096 causal keys 78 ms against 88 ms for 512 and 95 ms for 128 (one
# attention of width 256, 4 heads)
QUERY_BLOCK = 256
KERNELS = ("MultiHeadAttention", "QueryBlocks")  # the capability table's entries used here


def emit_long_input_attention(e, attrs, inputs, types, label) -> list[str] | None:
    """The lowering above for this attention, or None where none applies: a sparse pattern, a bias
    other than key padding, a model shorter than LONG_FROM, a target without the kernels."""
    q, k, v, *bias = inputs
    if (attrs.get("pattern") is not None or (bias and types[3].shape[1:3] != (1, 1))
            or (e.max_length or LONG_FROM) < LONG_FROM):
        return None
    causal = attrs["causal"]
    flash = (e.can("MultiHeadAttention") and not causal and not attrs.get("softcap")
             and types[0].shape[1] == types[1].shape[1])
    blocks = e.can("QueryBlocks") and (not causal or types[0].shape[2] == types[1].shape[2])
    if not (flash or blocks):
        return None
    if flash and not bias:
        return [flash_attention(e, attrs, inputs, types)]

    def fallback():
        if blocks:
            return query_blocks(e, attrs, inputs, types)
        return emit_standard_attention(e, attrs, inputs, types, label)

    long, unpadded = ("long", types[1].shape[2]), ("unpadded", bias[0])  # conditions shared by every layer
    if long not in e.memo:
        e.memo[long] = e.node1("GreaterOrEqual", length_of(e, k, 2), e.const(LONG_FROM), label="LongInput")
    if flash and unpadded not in e.memo:
        e.memo[unpadded] = e.node1("Equal", e.node1("ReduceMax", e.node1("Abs", bias[0]), keepdims=0),
                                   e.const(0.0, np.float32), label="NoPadding")

    def long_form():
        if not flash:
            return fallback()
        return [choose(e, e.memo[unpadded], lambda: [flash_attention(e, attrs, inputs, types)], fallback,
                       "FlashOrBlocks")]

    return [choose(e, e.memo[long], long_form, lambda: emit_standard_attention(e, attrs, inputs, types, label),
                   label or "Attention")]


def choose(e, condition: str, when_true, when_false, label: str) -> str:
    """An `If` between two lowerings of the same op (each a function returning its one output). The
    fused forms they miss are counted once, from `when_false`, the plainer of the two."""
    missed = e.missed.copy()
    then_branch = e.branch(when_true)
    e.missed = missed
    return e.node("If", [condition], then_branch=then_branch, else_branch=e.branch(when_false), label=label)[0]


def flash_attention(e, attrs, inputs, types) -> str:
    """onnxruntime's MultiHeadAttention, whose CPU kernel runs flash attention when it gets
    token-major (B, S, H·d) inputs and no mask or bias."""
    q, k, v = inputs[:3]
    heads, width, value_width = types[0].shape[1], types[0].shape[3], types[2].shape[3]
    out = e.node("MultiHeadAttention", [token_major(e, q, heads, width), token_major(e, k, heads, width),
                                        token_major(e, v, heads, value_width)],
                 domain="com.microsoft", num_heads=heads, scale=float(attrs["scale"]), label="FlashAttention")[0]
    return e.node1("Transpose", e.node1("Reshape", out, e.const([0, 0, heads, value_width])), perm=[0, 2, 1, 3])


def query_blocks(e, attrs, inputs, types) -> list[str]:
    """A `Loop` over blocks of QUERY_BLOCK queries (the queries padded to whole blocks), each block
    through the standard lowering: over every key with the key bias, or, causal, over the keys up
    to its end with the causal and key mask of its rows."""
    q, k, v, *bias = inputs
    block, s, causal = QUERY_BLOCK, length_of(e, q, 2), attrs["causal"]
    (b, heads, _, width), key_shape, value_shape = types[0].shape, types[1].shape, types[2].shape
    keys_axis = "keys" if causal else key_shape[2]
    block_types = [types[0].with_shape((b, heads, "block", width)),
                   types[1].with_shape(key_shape[:2] + (keys_axis,) + key_shape[3:]),
                   types[2].with_shape(value_shape[:2] + (keys_axis,) + value_shape[3:]),
                   types[0].with_shape((types[3].shape[0] if bias else 1, 1, "block" if causal else 1, keys_axis))]
    pad = padding_to(e, s, block)
    count = e.node1("Div", e.node1("Add", s, pad), e.const(block))
    padded = pad_end(e, q, pad, 2, 4)
    length = e.node1("Reshape", s, e.const([1]))

    def one_block(index):
        start = e.node1("Reshape", e.node1("Mul", index, e.const(block)), e.const([1]))
        stop = e.node1("Add", start, e.const([block]))
        rows = e.node1("Slice", padded, start, stop, e.const([2]))
        if not causal:
            row_types = block_types[:3] + block_types[3:3 + len(bias)]
            return emit_standard_attention(e, attrs, [rows, k, v, *bias], row_types, "BlockAttention")[0]
        end = e.node1("Min", stop, length)
        keys, values = (e.node1("Slice", x, e.const([0]), end, e.const([2])) for x in (k, v))
        i = e.node1("Add", start, e.const(np.arange(block)[:, None]))
        visible = e.node1("LessOrEqual", e.node1("Range", e.const(0), e.node1("Squeeze", end, e.const([0])),
                                                  e.const(1)), i)  # (block, keys)
        key_bias = e.node1("Slice", bias[0], e.const([0]), end, e.const([3])) if bias else e.const(0.0, np.float32)
        mask = e.node1("Where", visible, key_bias, e.mask())  # (B|1, 1, block, keys)
        if not bias:
            mask = e.node1("Unsqueeze", mask, e.const([0, 1]))
        return emit_standard_attention(e, {**attrs, "causal": False}, [rows, keys, values, mask], block_types,
                                       "BlockAttention")[0]

    stacked = e.loop(count, one_block, "QueryBlocks")  # (n, B, H, block, Dv)
    return [unstack_blocks(e, stacked, value_shape[3], s)]
