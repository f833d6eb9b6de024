"""The spec's kind registries: input layers, positional schemes, attention kinds and output heads. Each variant
registers its options section and builder from its own file in ``tfcompiler.builders``; its options
class derives from its registry's base below, which declares what rules may ask of any kind of the
registry (a kind overrides the class attributes that differ, as a class attribute or a property)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from .rules import Section
from .schema import KindRegistry, option

INPUTS = KindRegistry("input", "What the model reads: the input layer that makes the first hidden "
                      "states.", default="tokens")
POSITIONS = KindRegistry("positional", "How positions enter the model.", default="learned")
ATTENTION = KindRegistry("attention", "How a block's tokens attend to each other.", default="multi_head")
HEADS = KindRegistry("head", "What the model outputs: the head over the last stack's states.", default="none")


class InputKind(Section):
    """Options of an input layer."""

    # Why a decoder reading this input cannot be decoded incrementally (tfcompiler.builders.cache),
    # or "" when its states depend on each token alone.
    no_cache_because: ClassVar[str] = "its incremental form is not written yet"
    # The input is token ids looked up in `embeddings.tokens.weight`: an LM head can tie to that table,
    # and generation can feed back the tokens it picks.
    reads_tokens: ClassVar[bool] = False

    def parameters(self, spec) -> int:
        """Its weights' count, from the spec alone (tfcompiler.language.size): an estimate that errs high."""
        return 0


class PositionalKind(Section):
    """Options of a positional scheme."""

    # Positions count from the start of each call's segment (absolute tables, rotary angles), so the
    # states a segment memory carries over would collide with the new ones: only schemes that see
    # distances between queries and keys (or no positions at all) declare False.
    numbers_from_segment_start: ClassVar[bool] = True
    # Why its numbers cannot be computed a step at a time from a KV cache (tfcompiler.builders.cache),
    # or "" when each new token's positions and biases depend on its position and the keys' alone.
    no_cache_because: ClassVar[str] = ""

    def layer_parameters(self, spec) -> int:
        """The weights it adds to each self-attention, from the spec alone (tfcompiler.language.size): an
        estimate that errs high; 0 where they are small beside the layer's (a table per distance bucket)."""
        return 0


@dataclass(frozen=True, kw_only=True)
class AttentionKind(Section):
    """Options of an attention kind; the options every kind has are declared here."""

    padded_queries: str = option("attend", doc="The attention sublayer's output at a padded query: what it "
                                 "attends, as a real query's (attend), or zero (x-transformers zeroes it after "
                                 "the output projection).", choices=("attend", "zero"))

    # It mixes its own sequence only and cannot be a decoder's cross-attention over the encoder.
    self_only: ClassVar[bool] = False
    # Why it has no exact incremental form over a cache of past keys and values
    # (tfcompiler.builders.cache), or "" when a new query needs only the past keys and values: a
    # decoder with such a kind compiles without a cache and generation recomputes the prefix.
    no_cache_because: ClassVar[str] = "its incremental form is not written yet"
    # What a step carries from the earlier ones when it has an incremental form (docs/variants.md).
    cached_as: ClassVar[str] = "past keys and values (`past_key_values.N`)"
    # Why a left-padded row computes other numbers than the row alone (a pattern counted from the
    # input's first column), or "" when padding only hides keys: generation then runs such rows one by one.
    left_padding_shifts: ClassVar[str] = ""
    # Its input projection takes the width of what enters it (a recurrent layer's weight_ih is (directions,
    # gates·H, input width), torch's input_size): as a stack's first layer with `placement: none` it reads
    # input vectors of another width than the model's.
    reads_any_width: ClassVar[bool] = False


@dataclass(frozen=True, kw_only=True)
class HeadKind(Section):
    """Options of an output head."""

    # Why a decoder with this head compiles without a KV cache (tfcompiler.builders.cache), or "" when its
    # outputs at the new positions are what a step reads (next-token logits, the states a caller's own head reads).
    no_cache_because: ClassVar[str] = "scores the input's positions: there is no next token to generate"
    # What only the one-graph model outputs once generation is done (the TTS post-net over the finished
    # spectrogram), or "": a model folder of an encoder-decoder then holds model.onnx beside its two models.
    after_generation: ClassVar[str] = ""

    @property
    def kind(self) -> str:
        """The name the head is registered under (``spec.head.kind``)."""
        return self.KIND

    def parameters(self, spec) -> int:
        """Its weights' count, from the spec alone (tfcompiler.language.size): an estimate that errs high."""
        return 0
