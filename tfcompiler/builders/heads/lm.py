"""Head `lm`: a language-model head, logits over the vocabulary at every position (with a KV cache: the
last `logits_to_keep`), from the token embedding's matrix (tied) or its own; a masked LM's first passes
the states through a dense layer, an activation and the last block's norm (BERT's transform)."""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import HEADS, HeadKind
from ...language.model import PLAIN_ACTIVATIONS
from ...language.rules import At
from ...language.schema import option
from ..ffn import activate
from ..norm import build_norm


@dataclass(frozen=True, kw_only=True)
class LanguageModelHead(HeadKind):
    """Logits over the vocabulary at each position."""

    PAPER = "Radford et al. 2018 (GPT); Devlin et al. 2019 (BERT's masked LM)"
    COMPUTES = "`logits` (B, S, vocab) = h Eᵀ (tied) or h W, plus a bias where set; a masked LM's reads " \
               "LN(act(h W_d + b_d)) instead of h"
    LOWERING = "`MatMul` (`Add`); with a KV cache, the last `logits_to_keep` positions first"
    no_cache_because = ""

    tied: bool = option(True, doc="The LM head reuses the token embedding matrix.")
    bias: bool = option(False, doc="A bias on the LM head.")
    transform: str | None = option(None, doc="A dense layer, this activation and the last block's norm before "
                                   "the vocabulary map (the masked-LM heads' transform: BERT's "
                                   "`cls.predictions.transform`, RoBERTa's `lm_head.dense` and `layer_norm`); "
                                   "absent: the map reads the hidden states.", choices=PLAIN_ACTIVATIONS)

    def parameters(self, spec) -> int:
        width = spec.model.width
        return (0 if self.tied else spec.model.vocab_size * (width + 1)) + \
            (width * (width + 1) + 2 * width if self.transform else 0)

    def problems(self, spec, where):
        read = spec.input_of("decoder" if spec.decoder is not None else "encoder")
        if self.tied and not type(read).reads_tokens:
            yield At("tied", f"input '{type(read).KIND}' has no token table for the LM head to reuse: set "
                     "head.tied: false (the head's own matrix, lm_head.weight)")
        if spec.topology == "hierarchical":
            yield At("kind", "a hierarchical model outputs sentence vectors, not tokens: "
                     "use none, pooler, classifier or set_pool")


def build_lm_head(ctx, options: LanguageModelHead, spec, hidden, mask) -> dict:
    m = spec.model
    with ctx.at("lm_head"):
        if ctx.cache:  # generation reads the last position's logits only
            hidden = ctx.op("last_count", hidden, ctx.cache.logits_to_keep(ctx), axis=1, label="LogitsToKeep")
        if options.transform:  # a masked LM's: dense, activation, the stack's norm (BERT's LayerNorm)
            with ctx.at("transform"):
                hidden = activate(ctx, ctx.linear(hidden, m.width, "dense"), options.transform)
                hidden = build_norm(ctx, hidden, spec.stacks()[-1][2][-1].norm, "norm")
        if options.tied:
            table = ctx.param("", (m.vocab_size, m.width), "embedding", full_name="embeddings.tokens.weight")
            logits = ctx.op("matmul", hidden, ctx.op("transpose", table, perm=(1, 0)), label="MatMul")
        else:
            width = ctx.type_of(hidden).shape[-1]  # twice the model's after reversible blocks
            logits = ctx.op("matmul", hidden, ctx.param("weight", (width, m.vocab_size), "matrix"), label="MatMul")
        if options.bias:
            logits = ctx.op("add", logits, ctx.param("bias", (m.vocab_size,), "zeros"))
    return {"logits": logits}


HEADS.register("lm", LanguageModelHead, build_lm_head, examples={
    "masked_lm_head": """
topology: encoder
block: {placement: post, norm: {epsilon: 1e-12}}
encoder: {layers: 1}
head: {kind: lm, bias: true, transform: gelu}
""",
})
