"""Output heads: hidden states only, a pooler (dense + tanh over the first token, as BERT), a
classifier on the pooler, a language-model head (tied to the token embedding or its own), or the
Set Transformer's pooling by multi-head attention."""
from __future__ import annotations

from .attention.multi_head import MultiHeadOptions, build_multi_head
from .attention.parts import Site
from .ffn import build_ffn
from .norm import build_norm


def build_head(ctx, spec, hidden) -> dict:
    """Returns the graph outputs by their Hugging Face names."""
    head, m = spec.head, spec.model
    if head.kind == "lm":
        with ctx.at("lm_head"):
            if head.tied:
                table = ctx.param("", (m.vocab_size, m.width), "embedding", full_name="embeddings.tokens.weight")
                logits = ctx.op("matmul", hidden, ctx.op("transpose", table, perm=(1, 0)), label="MatMul")
            else:
                logits = ctx.op("matmul", hidden, ctx.param("weight", (m.width, m.vocab_size), "matrix"),
                                label="MatMul")
            if head.bias:
                logits = ctx.op("add", logits, ctx.param("bias", (m.vocab_size,), "zeros"))
        return {"logits": logits}
    if head.kind == "none":
        return {"last_hidden_state": hidden}
    if head.kind == "set_pool":
        return {"last_hidden_state": hidden, "pooler_output": set_pool(ctx, spec, hidden)}
    with ctx.at("pooler"):
        first = ctx.op("gather", hidden, ctx.constant(0, dtype="int64"), axis=1, label="FirstToken")
        pooled = ctx.op("tanh", ctx.linear(first, m.width, "dense"))
    if head.kind == "pooler":
        return {"last_hidden_state": hidden, "pooler_output": pooled}
    with ctx.at("classifier"):
        return {"logits": ctx.linear(pooled, head.labels, "")}


def set_pool(ctx, spec, hidden):
    """PMA_k(Z) = MAB(S, rFF(Z)) with MAB(X, Y) = LN(H + rFF(H)), H = LN(X + MHA(X, Y, Y)) (Lee et
    al. 2019): k learned seeds S attend the row-wise transformed outputs, padding hidden; the last
    block's FFN and norm settings serve as rFF and LN. (B, S, D) -> (B, k, D)."""
    last = (spec.decoder_blocks or spec.encoder_blocks)[-1]
    m, norm, ffn = spec.model, last.norm, last.ffn
    with ctx.at("pooler"):
        seeds = ctx.op("tile_batch", ctx.param("seeds", (1, spec.head.seeds, m.width), "embedding"), hidden)
        with ctx.at("input"):
            keys = build_ffn(ctx, hidden, ffn, spec)
        with ctx.at("attention"):
            site = Site(seeds, keys, ctx.inputs.get("attention_mask"), False)
            attended = build_multi_head(ctx, MultiHeadOptions(), spec, site)
        h = build_norm(ctx, ctx.op("add", seeds, attended), norm, "attention_norm")
        with ctx.at("output"):
            transformed = build_ffn(ctx, h, ffn, spec)
        return build_norm(ctx, ctx.op("add", h, transformed), norm, "output_norm")
