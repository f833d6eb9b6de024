"""What an input layer hands to its stack, the I/O names each stack uses, and what every input kind
makes alike: the padding mask and the embedding scale."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ...ir.graph import Value
from ...ir.types import BATCH, DECODER_SEQUENCE, SEQUENCE

SENTENCES, SENTENCE_LENGTH = "sentences", "sentence_length"


@dataclass(frozen=True)
class InputNames:
    prefix: str               # "" or "decoder_" (HF names the decoder's inputs decoder_input_ids, ...)
    axes: tuple[str, ...]     # the symbolic axes after the batch: (sequence,) or (sentences, sentence length)

    @property
    def shape(self) -> tuple[str, ...]:
        return (BATCH,) + self.axes

    @property
    def documents(self) -> bool:
        """The input is documents (B, sentences, sentence_length), read one sentence at a time."""
        return len(self.axes) == 2


@dataclass(frozen=True)
class StackInput:
    """The first hidden states (B, S, D), the padding mask (B, S) and the value positions are
    counted along (the ids, or the vectors (B, S, F)). Documents come folded: B·sentences rows of one
    sentence each. ``pair_terms``: what every self-attention of the stack adds over its query–key pairs
    (a graph's adjacency mask, edge biases, edge keys and values), each ``term(ctx, spec, parts)`` called in
    the attention's scope on its AttentionParts (the keys are the queries' own tokens). ``after_positions``,
    where an input layer has one, is the rest of it that comes after the stack's positions are added
    (hidden -> hidden: SpeechT5's encoder LayerNorm, its speaker projection)."""

    hidden: Value
    mask: Value | None
    ids: Value
    pair_terms: tuple[Callable, ...] = ()
    after_positions: Callable[[Value], Value] | None = None

    @staticmethod
    def input_names(spec, stack_name: str, own_model: bool = False) -> InputNames:
        """``own_model``: the stack is a model of its own (the decoder model of an encoder-decoder
        compiled for generation), whose inputs take the plain names."""
        if spec.topology == "encoder-decoder" and stack_name == "decoder" and not own_model:
            return InputNames("decoder_", (DECODER_SEQUENCE,))
        if spec.topology == "hierarchical":
            return InputNames("", (SENTENCES, SENTENCE_LENGTH))
        return InputNames("", (SEQUENCE,))


def embedding_tables(spec) -> int:
    """How many input embeddings a spec has: one per stack of an encoder-decoder that does not share
    them (`embedding.shared: false`), else one."""
    return 2 if spec.encoder is not None and spec.decoder is not None and not spec.embedding.shared else 1


def padding_mask(ctx, names: InputNames) -> Value:
    """`attention_mask` (B, S), 1 for a real position; with a cache it covers the past ones too (B, P+S)."""
    shape = (BATCH, ctx.cache.mask_axis) if ctx.cache else names.shape
    return ctx.input(names.prefix + "attention_mask", "int64", shape, role="padding_mask")


def scaled(ctx, spec, hidden: Value) -> Value:
    """The embeddings times √width (`embedding.scale: true`) or the given factor."""
    scale = spec.embedding.scale
    if scale is False:
        return hidden
    factor = spec.model.width ** 0.5 if scale is True else float(scale)
    return ctx.op("mul", hidden, ctx.constant(factor), label="EmbeddingScale")
