"""Hierarchical models: documents (B, N sentences, L tokens) read by the encoder one sentence per row
(B·N, L), each sentence pooled to a vector, and the document stack over the N sentence vectors
(B, N, D), its positions counting sentences.

HIBERT (Zhang et al. 2019): the whole encoder, then the document stack. Hi-Transformer (Wu et al.
2021), `interleaved`: after encoder layer i the sentences are pooled (sentence positions added) and
run through document layer i, and each document-aware sentence vector is added to every token of
its sentence before encoder layer i+1.

A padded sentence (all of its mask 0) is a row of padding: its tokens attend only padding and its
vector is masked out of the document stack, so it never reaches a real sentence.
"""
from __future__ import annotations

from ..language.kinds import POSITIONS
from .attention.multi_head import MultiHeadOptions, build_multi_head
from .attention.parts import Site
from .heads.base import pool
from .stack import build_embeddings, build_final_norm, build_layer, stack_positions


def build_hierarchy(ctx, spec):
    """Returns (sentence vectors (B, N, D), their mask (B, N), token states (B, N, L, D))."""
    start, tokens, token_positions = build_embeddings(ctx, spec, "encoder", spec.encoder_blocks)
    documents = ctx.inputs["input_ids"]  # (B, N, L): the shape the folds undo
    sentence_mask = ctx.op("reduce_max", ctx.inputs["attention_mask"], axes=(2,), keepdims=False,
                           label="RealSentences")  # (B, N)
    document = spec.document
    with ctx.at("document.embeddings"):
        sentence_positions = stack_positions(spec, spec.document_blocks,
                                             lambda: ctx.op("positions", sentence_mask, axis=1))
    embed = POSITIONS.builder(spec.positional).embed

    def sentence_vectors(tokens):
        """(B·N, L, D) -> (B, N, D): pooled, unfolded, with the sentence positions added."""
        with ctx.at("document.pooling"):
            vectors = pool_sentences(ctx, spec, tokens, start.mask, document.pooling)
            vectors = ctx.op("split_outer", vectors, documents, label="SentencesPerDocument")
        if embed is None:
            return vectors
        with ctx.at("document.embeddings"):
            return embed(ctx, spec.positional, spec, vectors, sentence_positions, sentence_mask)

    encoder_state, document_state = {"stack": "encoder"}, {"stack": "document"}

    def encoder_layer(i, tokens):
        return build_layer(ctx, spec, "encoder", spec.encoder, i, tokens, start.mask, token_positions, encoder_state)

    def document_layer(i, vectors):
        return build_layer(ctx, spec, "document", document, i, vectors, sentence_mask, sentence_positions,
                           document_state)

    if document.interleaved:
        for i in range(document.layers):
            tokens = encoder_layer(i, tokens)
            vectors = document_layer(i, sentence_vectors(tokens))
            with ctx.at("document", "layers", i):
                context = ctx.op("merge_outer", ctx.op("unsqueeze", vectors, axes=(2,)))  # (B·N, 1, D)
                tokens = ctx.op("add", tokens, context, label="DocumentContext")
        tokens = build_final_norm(ctx, "encoder", spec.encoder, spec.encoder_blocks, tokens)
    else:
        for i in range(spec.encoder.layers):
            tokens = encoder_layer(i, tokens)
        tokens = build_final_norm(ctx, "encoder", spec.encoder, spec.encoder_blocks, tokens)
        vectors = sentence_vectors(tokens)
        for i in range(document.layers):
            vectors = document_layer(i, vectors)
    vectors = build_final_norm(ctx, "document", document, spec.document_blocks, vectors)
    return vectors, sentence_mask, ctx.op("split_outer", tokens, documents, label="TokensPerDocument")


def pool_sentences(ctx, spec, tokens, mask, pooling: str):
    """(B·N, L, D) -> (B·N, D). Attention pooling: one learned query attends the sentence's real
    tokens with the model's heads."""
    if pooling != "attention":
        return pool(ctx, tokens, pooling, mask)
    query = ctx.op("tile_batch", ctx.param("query", (1, 1, spec.model.width), "embedding"), tokens)
    with ctx.at("attention"):
        pooled = build_multi_head(ctx, MultiHeadOptions(), spec, Site(query, tokens, mask, False))
    return ctx.op("reshape", pooled, shape=(0, spec.model.width), label="AttentionPool")
