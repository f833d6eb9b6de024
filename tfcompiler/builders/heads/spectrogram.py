"""Head `spectrogram`: the text-to-speech decoder's outputs (Li et al. 2019, the TTS Transformer; SpeechT5's
speech-decoder post-net). From each decoder state, the mel linear `feat_out` makes `reduction` frames
(`outputs_before_postnet`, B, S·r, mels) and the stop-token linear `prob_out` one stop logit per frame
(`stop_logits`, B, S·r: generation stops at the first state whose r sigmoid(logit) sum to a threshold, as
SpeechT5's generate_speech); the convolutional post-net
(`postnet_layers` Conv1d across the channels, BatchNorm folded into their weights, tanh after each but the last)
refines the whole spectrogram, added back as a residual: `spectrogram` = before + postnet(before).

Weight names follow Hugging Face's SpeechT5ForTextToSpeech (`speech_decoder_postnet.feat_out`, `.prob_out`,
`.layers.N`). The post-net reads neighbouring frames, padded ones included, as Hugging Face's does (no mask). A
decoder compiled a step at a time (with a KV cache) outputs the step's frames and stop logits only: the post-net
runs over the finished spectrogram (tfc_runtime.generation_frames).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import HEADS, HeadKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import cap, with_width
from ..sequence_conv import sequence_conv


@dataclass(frozen=True, kw_only=True)
class SpectrogramOptions(HeadKind):
    """Mel frames, stop-token logits and the convolutional post-net's refined spectrogram."""

    PAPER = "Li et al. 2019 (TTS Transformer); Ao et al. 2022 (SpeechT5)"
    COMPUTES = "r mel frames and r stop logits per decoder state (two linears); the spectrogram plus a " \
               "Conv1d post-net's (tanh but the last layer) correction"
    LOWERING = "`MatMul`, `Add`, `Reshape`/`Transpose` (r frames per state); post-net: `Transpose`, `Conv`, `Tanh`"
    # a step's frames and stop logits are the new position's alone; the post-net waits for the whole spectrogram
    no_cache_because: ClassVar[str] = ""
    after_generation: ClassVar[str] = "the post-net's `spectrogram` over the finished frames"

    mels: int = option(80, doc="Mel bins per frame (as many as the decoder's `mel_frames` input reads).",
                       minimum=1, shrink=cap(8))
    reduction: int = option(1, doc="r, frames per decoder state (SpeechT5's reduction_factor; Li et al.: 1).",
                            minimum=1)
    postnet_layers: int = option(5, doc="Conv1d layers of the post-net `speech_decoder_postnet.layers.N` (tanh after "
                                 "each but the last, which maps back to `mels`); 0: no post-net, the spectrogram "
                                 "is the frames.", minimum=0)
    postnet_channels: int = option(512, doc="The post-net's inner channels (Li et al.: 512; SpeechT5: 256).",
                                   minimum=1, shrink=with_width)
    postnet_kernel: int = option(5, doc="The post-net's kernel size (odd: the length is kept).", minimum=1)

    def parameters(self, spec) -> int:
        d, m, c, k, n = spec.model.width, self.mels, self.postnet_channels, self.postnet_kernel, self.postnet_layers
        channels = [m] + [c] * (n - 1) + [m] if n else [m]
        convs = sum((a * k + 1) * b for a, b in zip(channels, channels[1:]))
        return (d + 1) * (m + 1) * self.reduction + convs

    def problems(self, spec, where):
        if self.postnet_kernel % 2 == 0:
            yield f"head 'spectrogram': postnet_kernel {self.postnet_kernel} must be odd (the length is kept)"
        if spec.decoder is None:
            yield f"head 'spectrogram' reads a decoder's states: topology '{spec.topology}' has no decoder"
            return
        fed_back = getattr(spec.input_of("decoder"), "mels", self.mels)  # the frames the decoder reads
        if fed_back != self.mels:
            yield At("mels", f"the head makes frames of {self.mels} mels and the decoder reads frames of {fed_back} "
                     "(decoder.input.mels): generation feeds the one to the other")


def per_frame(ctx, x, r: int, width: int):
    """(B, S, r·width) -> (B, S·r, width): state s's j-th frame at s·r + j (Hugging Face's view(B, -1, width))."""
    if r == 1:
        return x
    x = ctx.op("transpose", ctx.op("reshape", x, shape=(0, 0, r, width)), perm=(1, 2, 0, 3))  # (S, r, B, width)
    return ctx.op("transpose", ctx.op("merge_outer", x), perm=(1, 0, 2), label="FramesPerState")


def build_spectrogram_head(ctx, options: SpectrogramOptions, spec, hidden, mask) -> dict:
    m, r = options.mels, options.reduction
    with ctx.at("speech_decoder_postnet"):
        before = per_frame(ctx, ctx.linear(hidden, m * r, "feat_out"), r, m)
        stop = ctx.op("reshape", per_frame(ctx, ctx.linear(hidden, r, "prob_out"), r, 1), shape=(0, 0),
                      label="StopLogits")
        outputs = {"outputs_before_postnet": before, "stop_logits": stop}
        if ctx.cache:  # a step's frames: the post-net reads the finished spectrogram
            return outputs
        refined = before
        for i in range(options.postnet_layers):
            last = i == options.postnet_layers - 1
            out = m if last else options.postnet_channels
            with ctx.at("layers", i):
                weight = ctx.param("weight", (out, ctx.type_of(refined).shape[-1], options.postnet_kernel), "matrix")
                refined = sequence_conv(ctx, refined, weight, ctx.param("bias", (out,), "zeros"))
            refined = refined if last else ctx.op("tanh", refined)
        outputs["spectrogram"] = ctx.op("add", before, refined, label="PostnetResidual") \
            if options.postnet_layers else before
    return outputs


HEADS.register("spectrogram", SpectrogramOptions, build_spectrogram_head, examples={
    "tts_transformer_spectrogram": """
topology: encoder-decoder
input: {kind: phonemes, convolutions: 1, kernel: 3}
positional: {kind: scaled_sinusoidal, layout: interleaved, initial_scale: 1.0}
block: {placement: post, ffn: {activation: relu}}
encoder: {layers: 1}
decoder: {layers: 1, input: {kind: mel_frames, mels: 6, prenet_units: 10}}
head: {kind: spectrogram, mels: 6, postnet_layers: 2, postnet_channels: 8, postnet_kernel: 3}
""",
    "speecht5_spectrogram_with_speaker": """
topology: encoder-decoder
input: {kind: phonemes, convolutions: 0, norm: true}
positional: {kind: scaled_sinusoidal, layout: interleaved, initial_scale: 1.0}
block: {placement: post}
encoder: {layers: 1, block: {positional: {kind: shaw, max_distance: 2, value_term: false}}}
decoder: {layers: 2, input: {kind: mel_frames, mels: 4, prenet_units: 6, speaker_embedding: 5}}
head: {kind: spectrogram, mels: 4, reduction: 2, postnet_layers: 3, postnet_channels: 6, postnet_kernel: 3}
""",
})
