"""Memformer's external memory (Wu et al. 2020): K slots carried from segment to segment.

Reading: every encoder layer has a cross-attention sublayer whose keys and values are the slots
(the block's `cross_attention`). Writing, after the encoder's last layer and final norm H: each slot
attends to itself and to the real tokens of H (slot attention, one head set, no positions),
M' = Attn(m_i, [m_i; H]). Forgetting, `gru`: a GRU cell gates how much of each old slot is kept
(input M', state M) and a pre-norm feed-forward sublayer follows, M_next = G + FFN(LN(G)) (the
public implementation's writer, lucidrains/memformer); `normalize`: M_next = LN(M' + b), a learned
bias per slot that a slot written with nothing new drifts to (the paper's biased memory
normalisation).

The slots are state I/O: `past_memory_slots` (B, 0 or K, D) in, `present_memory_slots` (B, K, D)
out. An empty input (the first segment) starts from the learned slots: the learned ones are put in
front and the last K kept, so no branch is needed in the graph.
"""
from __future__ import annotations

import numpy as np

from ..ir.types import BATCH
from ..language.model import Ffn, Norm
from .attention.multi_head import key_padding
from .attention.parts import Site
from .ffn import build_ffn
from .gru_cell import gru_cell
from .norm import build_norm


def read_slots(ctx, spec, stack_name: str, count: int, like):
    """(B, K, D): the slots this segment reads, from `past_memory_slots` or the learned start."""
    with ctx.at(stack_name, "memory_slots"):
        past = ctx.input("past_memory_slots", "float32", (BATCH, "past_memory_length", spec.model.width), role="memory")
        start = ctx.op("tile_batch", ctx.param("initial", (1, count, spec.model.width), "embedding"), like)
        return ctx.op("keep_last", ctx.op("concat", start, past, axis=1), axis=1, count=count, label="SlotsOrStart")


def write_slots(ctx, spec, stack_name: str, options, slots, hidden, mask):
    """`present_memory_slots`: the slots rewritten from the encoder's output hidden (B, S, D)."""
    with ctx.at(stack_name, "memory_writer"):
        with ctx.at("attention"):
            written = slot_attention(ctx, spec, slots, hidden, mask)
        if options.forgetting == "normalize":
            bias = ctx.param("slot_bias", (options.count, spec.model.width), "embedding")
            updated = build_norm(ctx, ctx.op("add", written, bias), Norm(), "norm")
        else:
            kept = gru_cell(ctx, written, slots)
            normed = build_norm(ctx, kept, Norm(), "ffn_norm")
            updated = ctx.op("add", kept, build_ffn(ctx, normed, Ffn(activation="gelu"), spec))
        ctx.graph.outputs["present_memory_slots"] = updated


def slot_attention(ctx, spec, slots, hidden, mask):
    """Each slot's query scores its own key and the tokens' keys; one softmax over both."""
    m = spec.model
    heads = lambda x, name, count: ctx.split_heads(ctx.linear(x, count * m.dh, name, m.bias), count, m.dh)  # noqa: E731
    query = heads(slots, "query", m.heads)
    own_key, own_value = heads(slots, "key", m.heads), heads(slots, "value", m.heads)
    keys, values = heads(hidden, "key", m.heads), heads(hidden, "value", m.heads)
    scale = ctx.constant(np.float32(1 / np.sqrt(m.dh)))
    own = ctx.op("mul", ctx.op("reduce_sum", ctx.op("mul", query, own_key), axes=(3,), keepdims=True), scale)
    tokens = ctx.op("mul", ctx.op("matmul", query, ctx.op("transpose", keys, perm=(0, 1, 3, 2))), scale)
    for bias in key_padding(ctx, Site(slots, hidden, mask, False)):
        tokens = ctx.op("add", tokens, bias)
    probs = ctx.op("softmax", ctx.op("concat", own, tokens, axis=3), axis=-1, label="OwnSlotAndTokens")
    first = ctx.constant([0], dtype="int64")
    no_value = ctx.op("mul", ctx.op("gather", values, first, axis=2), ctx.constant(0.0))  # the own slot's place
    context = ctx.op("add", ctx.op("matmul", probs, ctx.op("concat", no_value, values, axis=2)),
                     ctx.op("mul", ctx.op("gather", probs, first, axis=3), own_value))
    return ctx.linear(ctx.merge_heads(context), m.width, "output", m.bias)

