"""Output heads: hidden states only, a pooler (dense + tanh over the first token, as BERT; another
activation, another token), a classifier on the pooler (or on the pooled token alone: a decoder's
last-token score), a language-model head (tied to the token embedding or its own; a masked LM's with
its dense + activation + norm transform first), per-token heads (a token classifier; answer spans'
start and end logits), or the Set Transformer's pooling by multi-head attention."""
from __future__ import annotations

from .attention.multi_head import MultiHeadOptions, build_multi_head
from .attention.parts import Site
from .ffn import activate, build_ffn
from .norm import build_norm


def build_head(ctx, spec, hidden, mask) -> dict:
    """Returns the graph outputs by their Hugging Face names; `mask` (B, S) marks hidden's real rows."""
    head, m = spec.head, spec.model
    if head.kind == "lm":
        with ctx.at("lm_head"):
            if ctx.cache:  # generation reads the last position's logits only
                hidden = ctx.op("last_count", hidden, ctx.cache.logits_to_keep(ctx), axis=1, label="LogitsToKeep")
            if head.transform:  # a masked LM's: dense, activation, the stack's norm (BERT's LayerNorm)
                with ctx.at("transform"):
                    hidden = activate(ctx, ctx.linear(hidden, m.width, "dense"), head.transform)
                    hidden = build_norm(ctx, hidden, spec.stacks()[-1][2][-1].norm, "norm")
            if head.tied:
                table = ctx.param("", (m.vocab_size, m.width), "embedding", full_name="embeddings.tokens.weight")
                logits = ctx.op("matmul", hidden, ctx.op("transpose", table, perm=(1, 0)), label="MatMul")
            else:
                width = ctx.type_of(hidden).shape[-1]  # twice the model's after reversible blocks
                logits = ctx.op("matmul", hidden, ctx.param("weight", (width, m.vocab_size), "matrix"),
                                label="MatMul")
            if head.bias:
                logits = ctx.op("add", logits, ctx.param("bias", (m.vocab_size,), "zeros"))
        return {"logits": logits}
    if head.kind == "none":
        return {"last_hidden_state": hidden}
    if head.kind == "token_classifier":
        with ctx.at("classifier"):
            return {"logits": ctx.linear(hidden, head.labels, "")}
    if head.kind == "span":
        with ctx.at("span"):
            both = ctx.linear(hidden, 2, "")  # (B, S, 2): each token's start and end logits
            return {name: ctx.op("gather", both, ctx.constant(i, dtype="int64"), axis=2, label=label)
                    for i, (name, label) in enumerate((("start_logits", "Start"), ("end_logits", "End")))}
    if head.kind == "set_pool":
        return {"last_hidden_state": hidden, "pooler_output": set_pool(ctx, spec, hidden, mask)}
    with ctx.at("pooler"):
        pooled = pool(ctx, hidden, head.pooling, mask)
        if head.dense:  # BERT's pooler; a decoder's `score` reads the token itself
            dense = ctx.linear(pooled, m.width, "dense")
            pooled = ctx.op("tanh", dense) if head.activation == "tanh" else activate(ctx, dense, head.activation)
    if head.kind == "pooler":
        return {"last_hidden_state": hidden, "pooler_output": pooled}
    with ctx.at("classifier"):
        return {"logits": ctx.linear(pooled, head.labels, "")}


def pool(ctx, hidden, pooling: str, mask):
    """(B, S, D) -> (B, D): the first token, the mean of the real tokens, or the last real one (the
    rightmost position the padding mask (B, S) marks), read through that mask."""
    if pooling == "first" or mask is None and pooling == "last":
        index = 0 if pooling == "first" else -1
        return ctx.op("gather", hidden, ctx.constant(index, dtype="int64"), axis=1,
                      label="FirstToken" if index == 0 else "LastToken")
    weights = ctx.op("cast", mask, dtype="float32")  # (B, S)
    if pooling == "last":  # one-hot at the rightmost marked position, whichever side the padding is on
        positions = ctx.op("positions", mask, axis=1)
        last = ctx.op("reduce_max", ctx.op("mul", positions, mask), axes=(1,), keepdims=True)
        # times the mask: a row with no marked position pools to zeros, not to its first token
        weights = ctx.op("mul", weights, ctx.op("cast", ctx.op("equal", positions, last), dtype="float32"))
    elif mask is None:
        return ctx.op("reduce_mean", hidden, axes=(1,), keepdims=False, label="MeanPool")
    total = ctx.op("matmul", ctx.op("unsqueeze", weights, axes=(1,)), hidden)  # (B, 1, D)
    count = ctx.op("unsqueeze", ctx.op("reduce_sum", weights, axes=(1,), keepdims=True), axes=(2,))
    count = ctx.op("clip", count, low=1.0)  # an empty row (a padded sentence) pools to zeros, not NaN
    width = ctx.type_of(hidden).shape[-1]
    return ctx.op("reshape", ctx.op("div", total, count), shape=(0, width), label=f"{pooling.title()}Pool")


def set_pool(ctx, spec, hidden, mask):
    """PMA_k(Z) = MAB(S, rFF(Z)) with MAB(X, Y) = LN(H + rFF(H)), H = LN(X + MHA(X, Y, Y)) (Lee et
    al. 2019): k learned seeds S attend the row-wise transformed outputs, padding hidden; the last
    block's FFN and norm settings serve as rFF and LN. (B, S, D) -> (B, k, D)."""
    last = spec.stacks()[-1][2][-1]
    m, norm, ffn = spec.model, last.norm, last.ffn
    with ctx.at("pooler"):
        seeds = ctx.op("tile_batch", ctx.param("seeds", (1, spec.head.seeds, m.width), "embedding"), hidden)
        with ctx.at("input"):
            keys = build_ffn(ctx, hidden, ffn, spec)
        with ctx.at("attention"):
            site = Site(seeds, keys, mask, False)
            attended = build_multi_head(ctx, MultiHeadOptions(), spec, site)
        h = build_norm(ctx, ctx.op("add", seeds, attended), norm, "attention_norm")
        with ctx.at("output"):
            transformed = build_ffn(ctx, h, ffn, spec)
        return build_norm(ctx, ctx.op("add", h, transformed), norm, "output_norm")
