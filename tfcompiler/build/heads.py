"""Output heads: hidden states only, a pooler (dense + tanh over the first token, as BERT), a
classifier on the pooler, or a language-model head (tied to the token embedding or its own)."""
from __future__ import annotations


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
    with ctx.at("pooler"):
        first = ctx.op("gather", hidden, ctx.constant(0, dtype="int64"), axis=1, label="FirstToken")
        pooled = ctx.op("tanh", ctx.linear(first, m.width, "dense"))
    if head.kind == "pooler":
        return {"last_hidden_state": hidden, "pooler_output": pooled}
    with ctx.at("classifier"):
        return {"logits": ctx.linear(pooled, head.labels, "")}
