"""Input layer `mel_frames`: the decoder of text-to-speech reads the mel frames it has made so far (Li et al.
2019, the TTS Transformer; SpeechT5). Each frame (B, T, mels) goes through the decoder pre-net:
`prenet_layers` linear layers of `prenet_units` with a ReLU each, then a linear projection to the width
(`prenet.projection`, Li et al.'s, SpeechT5's final_layer). The pre-net's dropout is off: Tacotron 2 and SpeechT5
keep it on at inference (SpeechT5's "consistent dropout": one mask drawn per call, shared by the batch's rows),
which makes their frames random; the compiled model is the deterministic pre-net, which equals SpeechT5's with
that dropout removed.

With `speaker_embedding` (SpeechT5), a speaker vector `speaker_embeddings` (B, speaker_embedding) joins every
frame after the stack's positions are added: relu(W [h; s / ‖s‖] + b), W (width + speaker_embedding, width)
stored as its two blocks, `speaker_projection.weight` (width, width) for the states and
`speaker_projection.speaker_weight` (speaker_embedding, width) for the speaker (one vector per row, added to
every frame).

Graph inputs follow Hugging Face's SpeechT5ForTextToSpeech: ``decoder_input_values`` (float, role `vectors`),
``decoder_attention_mask`` and ``speaker_embeddings``; a decoder model of its own (compiled for generation with
a cache) reads ``input_values`` and ``attention_mask``. A frame's embedding is its own, so the decoder
compiles with a KV cache.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.schema import option
from ...language.shrink_rules import cap, with_width
from .base import StackInput, padding_mask


@dataclass(frozen=True)
class MelFrameOptions(InputKind):
    """Mel-spectrogram frames (B, T, mels) through the text-to-speech decoder pre-net, and a speaker vector."""

    PAPER = "Li et al. 2019 (TTS Transformer); Ao et al. 2022 (SpeechT5)"
    COMPUTES = "float frames `decoder_input_values` (B, T, mels) through `prenet_layers` linear + ReLU layers and " \
               "a linear projection to the width; with `speaker_embedding`, relu(W [h; s/‖s‖] + b) after the " \
               "positions"
    LOWERING = "`MatMul`, `Add`, `Relu` (speaker: `ReduceSum`, `Sqrt`, `Div`, `MatMul`, `Unsqueeze`)"
    no_cache_because: ClassVar[str] = ""  # a frame's embedding is its own

    mels: int = option(80, doc="Mel bins per frame.", minimum=1, shrink=cap(8))
    prenet_layers: int = option(2, doc="Linear + ReLU layers of the pre-net `prenet.layers.N` before its "
                                "projection to the width `prenet.projection`.", minimum=1)
    prenet_units: int = option(256, doc="The pre-net layers' width.", minimum=1, shrink=with_width)
    speaker_embedding: int = option(0, doc="The width of the speaker vector `speaker_embeddings` (B, width) that "
                                    "joins every frame after the positions (SpeechT5's speaker_embeds_layer); "
                                    "0: no speaker input.", minimum=0, shrink=cap(8))

    def parameters(self, spec) -> int:
        d, u = spec.model.width, self.prenet_units
        prenet = (self.mels + 1) * u + (self.prenet_layers - 1) * (u + 1) * u + (u + 1) * d
        return prenet + ((d + self.speaker_embedding + 1) * d if self.speaker_embedding else 0)

    def problems(self, spec, where):
        if spec.decoder is None:
            yield f"input 'mel_frames' is the frames a decoder has made so far: topology '{spec.topology}' has no " \
                  "decoder (text-to-speech reads it in the decoder of an encoder-decoder: decoder.input)"


def build_mel_frames(ctx, options: MelFrameOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name, own_model=ctx.cache is not None)
    frames = ctx.input(names.prefix + "input_values", "float32", names.shape + (options.mels,), role="vectors")
    mask = padding_mask(ctx, names)
    hidden = frames
    with ctx.at("prenet"):
        for i in range(options.prenet_layers):
            hidden = ctx.op("relu", ctx.linear(hidden, options.prenet_units, f"layers.{i}"))
        hidden = ctx.linear(hidden, spec.model.width, "projection")
    speaker = None
    if options.speaker_embedding:
        speaker = ctx.input("speaker_embeddings", "float32", (BATCH, options.speaker_embedding),
                            role="speaker_embeddings")
    return StackInput(hidden=hidden, mask=mask, ids=frames,
                      after_positions=(lambda x: join_speaker(ctx, spec, x, speaker)) if speaker is not None else None)


def join_speaker(ctx, spec, hidden, speaker):
    """relu(W [hidden; s/‖s‖] + b), the speaker's half computed once per row and added to each frame."""
    with ctx.at("speaker_projection"):
        length = ctx.op("sqrt", ctx.op("reduce_sum", ctx.op("mul", speaker, speaker), axes=(1,), keepdims=True))
        unit = ctx.op("div", speaker, ctx.op("clip", length, low=1e-12), label="NormalizeSpeaker")  # F.normalize
        width = ctx.type_of(speaker).shape[-1]
        per_row = ctx.op("matmul", unit, ctx.param("speaker_weight", (width, spec.model.width), "matrix"))
        joined = ctx.op("add", ctx.linear(hidden, spec.model.width, ""), ctx.op("unsqueeze", per_row, axes=(1,)))
        return ctx.op("relu", joined)


INPUTS.register("mel_frames", MelFrameOptions, build_mel_frames, examples={
    "mel_frames_decoder_with_speaker": """
topology: encoder-decoder
positional: {kind: scaled_sinusoidal, layout: interleaved}
block: {placement: post}
encoder: {layers: 1}
decoder: {layers: 2, input: {kind: mel_frames, mels: 6, prenet_units: 10, speaker_embedding: 4}}
head: {kind: none}
""",
    "mel_frames_decoder_three_layer_prenet": """
topology: encoder-decoder
input: {kind: phonemes, convolutions: 1, kernel: 3}
positional: learned
encoder: {layers: 1}
decoder: {layers: 1, input: {kind: mel_frames, mels: 3, prenet_layers: 3, prenet_units: 7}}
""",
})
