"""Input layer `phonemes`: the text encoder of text-to-speech (Li et al. 2019, the TTS Transformer; SpeechT5).
Token ids (phonemes or characters) looked up as `tokens` does (same inputs, same table), then the encoder
pre-net: `convolutions` Conv1d layers across the channels ('same' length, kernel `kernel`), each followed by a
ReLU, and a linear projection to the width (Tacotron 2's convolutions with Li et al.'s added projection, which
puts the pre-net's output in the range of the positions added next). The paper's BatchNorm after each
convolution is folded into its weight and bias (eval mode: γ(Wx + b - μ)/√(σ² + ε) + β is a convolution
again); the importer or the user folds it. Padded positions are zeroed before each convolution, so a row's
real positions read zeros past its end, as if alone in the batch.

With `norm`, a LayerNorm follows the positions the stack adds (SpeechT5's encoder layer_norm, before the first
layer; it takes the epsilon of the stack's first block's norm): `embedding.norm` would normalise the decoder's
input too.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

from ...language.kinds import INPUTS
from ...language.model import Norm
from ...language.schema import option
from ...language.shrink_rules import with_width
from ..norm import build_norm
from ..sequence_conv import sequence_conv
from .tokens import TokenOptions, build_tokens


@dataclass(frozen=True)
class PhonemeOptions(TokenOptions):
    """Token ids (phonemes, characters) through the text-to-speech encoder pre-net: convolutions, a projection."""

    PAPER = "Li et al. 2019 (TTS Transformer); Ao et al. 2022 (SpeechT5)"
    COMPUTES = "token ids looked up, then `convolutions` Conv1d + ReLU layers (BatchNorm folded) and a linear " \
               "projection to the width; with `norm`, a LayerNorm after the positions"
    LOWERING = "`Gather`; per convolution `Mul` (padding zeroed), `Transpose`, `Conv`, `Relu`; `MatMul`, `Add`"
    no_cache_because: ClassVar[str] = "its pre-net's convolutions read the neighbouring tokens"

    convolutions: int = option(3, doc="Conv1d layers of the pre-net (Li et al.: 3), each with a ReLU, then a "
                               "linear projection `prenet.projection` to the width; 0: the embeddings as they are "
                               "(SpeechT5).", minimum=0)
    kernel: int = option(5, doc="The convolutions' kernel size (odd: the length is kept).", minimum=1)
    channels: int = option(0, doc="The convolutions' channels; 0: the model width (the embeddings' width).",
                           minimum=0, shrink=with_width)
    norm: bool = option(False, doc="A LayerNorm `norm` after the stack's positions are added (SpeechT5's "
                        "encoder layer_norm).")

    def width(self, spec) -> int:
        return self.channels or spec.model.width

    def parameters(self, spec) -> int:
        d, c, k = spec.model.width, self.width(spec), self.kernel
        # the first convolution reads the embeddings (width d), the others its c channels: a closed form, as
        # a count in the billions is a spec to refuse by size, not to loop over
        convs = ((d * k + 1) * c + (self.convolutions - 1) * (c * k + 1) * c) if self.convolutions else 0
        projection = (c + 1) * d if self.convolutions else 0
        return super().parameters(spec) + convs + projection + 2 * d * self.norm

    def problems(self, spec, where):
        if self.kernel % 2 == 0:
            yield f"input 'phonemes': kernel {self.kernel} must be odd (a convolution that keeps the length)"
        if spec.topology == "hierarchical":
            yield "input 'phonemes' reads a sequence of token ids, not documents"


def build_phonemes(ctx, options: PhonemeOptions, spec, stack_name: str):
    start = build_tokens(ctx, options, spec, stack_name)
    hidden, keep = start.hidden, ctx.op("unsqueeze", ctx.op("cast", start.mask, dtype="float32"), axes=(2,))
    with ctx.at("prenet"):
        for i in range(options.convolutions):
            with ctx.at("convolutions", i):
                inputs = ctx.type_of(hidden).shape[-1]
                weight = ctx.param("weight", (options.width(spec), inputs, options.kernel), "matrix")
                bias = ctx.param("bias", (options.width(spec),), "zeros")
                # padded positions read as zeros: a row's numbers do not depend on the batch's longest row
                hidden = ctx.op("relu", sequence_conv(ctx, ctx.op("mul", hidden, keep), weight, bias))
        if options.convolutions:
            hidden = ctx.linear(hidden, spec.model.width, "projection")
    if not options.norm:
        return replace(start, hidden=hidden)
    blocks = spec.blocks_of(stack_name)
    norm = Norm(kind="layer_norm", epsilon=blocks[0].norm.epsilon if blocks else Norm().epsilon)
    return replace(start, hidden=hidden, after_positions=lambda x: build_norm(ctx, x, norm, "norm"))


INPUTS.register("phonemes", PhonemeOptions, build_phonemes, examples={
    "phonemes_tts_encoder": """
topology: encoder
input: {kind: phonemes, convolutions: 2, kernel: 3, channels: 12}
positional: {kind: scaled_sinusoidal, layout: interleaved, initial_scale: 1.0}
block: {placement: post, ffn: {activation: relu}}
encoder: {layers: 1}
""",
    "phonemes_speecht5_encoder": """
topology: encoder
input: {kind: phonemes, convolutions: 0, norm: true}
positional: {kind: scaled_sinusoidal, layout: interleaved, initial_scale: 1.0}
block: {placement: post, positional: {kind: shaw, max_distance: 3, value_term: false}}
encoder: {layers: 2}
""",
})
