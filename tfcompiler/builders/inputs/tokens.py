"""Input layer `tokens`: token ids (and optional segment ids) looked up in embedding tables.

Graph inputs follow Hugging Face names: ``input_ids``, ``attention_mask``, ``token_type_ids``; the
decoder of an encoder-decoder reads ``decoder_input_ids`` and ``decoder_attention_mask``. A
hierarchical model reads documents, ids (batch, sentences, sentence_length), folded to one sentence
per row before the lookup.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.schema import option
from .base import StackInput, embedding_tables, scaled


@dataclass(frozen=True)
class TokenOptions(InputKind):
    """Token ids looked up in an embedding table, with optional segment (token type) ids."""

    PAPER = "Vaswani et al. 2017; BERT's segments"
    COMPUTES = "token ids (and segment ids, with `token_types`) looked up in embedding tables"
    LOWERING = "`Gather`"
    no_cache_because: ClassVar[str] = ""  # a token's embedding is its own
    reads_tokens: ClassVar[bool] = True

    token_types: int = option(0, doc="Token-type (segment) vocabulary; 0 means no `token_type_ids` "
                              "input.", minimum=0)

    def parameters(self, spec) -> int:
        return (embedding_tables(spec) * spec.model.vocab_size + self.token_types) * spec.model.width


def build_tokens(ctx, options: TokenOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name, own_model=ctx.cache is not None)
    d = spec.model.width

    def read(name, role, shape=names.shape, **attrs):
        value = ctx.input(names.prefix + name, "int64", shape, role=role, **attrs)
        return ctx.op("merge_outer", value, label="OneSentencePerRow") if names.documents else value

    ids = read("input_ids", "token_ids", range=spec.model.vocab_size)
    mask = read("attention_mask", "padding_mask", (BATCH, ctx.cache.mask_axis) if ctx.cache else names.shape)
    shared = spec.topology != "encoder-decoder" or spec.embedding.shared
    table = ctx.param("tokens.weight", (spec.model.vocab_size, d), "embedding",
                      full_name="embeddings.tokens.weight" if shared else None)
    hidden = ctx.op("gather", table, ids, label="TokenEmbedding")
    hidden = scaled(ctx, spec, hidden)
    if options.token_types:
        types = read("token_type_ids", "token_type_ids", range=options.token_types)
        table = ctx.param("token_types.weight", (options.token_types, d), "embedding")
        hidden = ctx.op("add", hidden, ctx.op("gather", table, types, label="TokenTypeEmbedding"))
    return StackInput(hidden=hidden, mask=mask, ids=ids)


INPUTS.register("tokens", TokenOptions, build_tokens, examples={
    "token_types_encoder": """
topology: encoder
input: {kind: tokens, token_types: 3}
encoder: {layers: 1}
head: {kind: pooler}
""",
})
