"""Absolute positional schemes added to the embeddings: `sinusoidal` (Vaswani et al. 2017, in the
paper's interleaved layout or tensor2tensor/fairseq's concatenated sin|cos layout),
`scaled_sinusoidal` (the same table times one learned scalar, initialised to 1/√width: Hua et al.
2022, x-transformers; the TTS Transformer's x + α·PE, Li et al. 2019, with α from 1), `learned`
(BERT, GPT-2) and `none`.

The sinusoidal table is built as IR arithmetic on constants; constant folding turns it into one
constant, so the ONNX holds a (max_length, width) table gathered by position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from .base import PositionalScheme


@dataclass(frozen=True)
class SinusoidalOptions(PositionalKind):
    """Fixed sinusoids of geometric wavelengths (Vaswani et al. 2017), added to the embeddings."""

    PAPER = "Vaswani et al. 2017"
    COMPUTES = "fixed table (interleaved or [sin|cos])"
    LOWERING = "a folded constant table, `Gather`"

    layout: str = option("interleaved", doc="interleaved (sin, cos, sin, ... as in the paper) or "
                         "concatenated ([sin ... | cos ...], tensor2tensor and fairseq).",
                         choices=("interleaved", "concatenated"))
    base: float = option(10000.0, doc="Wavelength base.", minimum=1.0)
    spacing: str = option("paper", doc="The frequencies: 1/base^(2i/width) for i < width/2 (paper), or "
                          "1/base^(i/(width/2 - 1)), the last exactly 1/base (fairseq: tensor2tensor's "
                          "timescales, Speech2Text's positions).", choices=("paper", "fairseq"))
    offset: int = option(0, doc="The first position's number: the table's row of position 0 (fairseq and "
                         "Speech2Text count positions from padding_idx + 1, i.e. 2).", minimum=0)

    def problems(self, spec, where):
        if spec.model.width % 2:
            yield f"sinusoidal positions need an even width, got {spec.model.width}"


@dataclass(frozen=True)
class ScaledSinusoidalOptions(SinusoidalOptions):
    """Sinusoids times a learned scalar (Hua et al. 2022; x-transformers' scaled_sinu_pos_emb)."""

    PAPER = "Hua et al. 2022"
    COMPUTES = "the fixed sinusoidal table × a learned scalar"
    LOWERING = "a folded constant table, `Gather`"

    layout: str = option("concatenated", doc="interleaved or concatenated ([sin ... | cos ...], as "
                         "x-transformers).", choices=("interleaved", "concatenated"))
    initial_scale: float | None = option(None, doc="The learned scalar's first value (weights drawn with "
                                         "--seed). Absent: 1/√width (x-transformers); the TTS Transformer's α "
                                         "(Li et al. 2019, SpeechT5's encode_positions.alpha) starts at 1.")


@dataclass(frozen=True)
class LearnedOptions(PositionalKind):
    """A learned (max_length, width) table added to the embeddings (BERT, GPT-2)."""

    PAPER = "BERT, GPT-2"
    COMPUTES = "learned table"
    LOWERING = "`Gather`"


@dataclass(frozen=True)
class NoPositions(PositionalKind):
    """No positional signal (for kinds that bring their own, or none at all)."""

    PAPER = ""
    COMPUTES = "no positions"
    LOWERING = ""
    numbers_from_segment_start: ClassVar[bool] = False  # nothing to collide


def sinusoidal_table(ctx, options: SinusoidalOptions, length: int, width: int):
    """PE[p, 2i] = sin(p / base^(2i/width)), PE[p, 2i+1] = cos(...), in IR ops on constants.
    Computed in float64 and cast: angles reach max_length radians, where float32 loses ~1e-4."""
    half = width // 2
    positions = ctx.constant(np.arange(length)[:, None], dtype="float64")
    exponents = np.arange(half) * 2 / width if options.spacing == "paper" else np.arange(half) / max(half - 1, 1)
    inv_freq = ctx.constant(1.0 / options.base ** exponents, dtype="float64")
    angles = ctx.op("mul", positions, inv_freq)
    sin, cos = ctx.op("sin", angles), ctx.op("cos", angles)
    if options.layout == "concatenated":
        table = ctx.op("concat", sin, cos, axis=-1)
    else:
        pairs = ctx.op("concat", ctx.op("unsqueeze", sin, axes=(2,)),
                       ctx.op("unsqueeze", cos, axes=(2,)), axis=-1)
        table = ctx.op("reshape", pairs, shape=(length, width))
    return ctx.op("cast", table, dtype="float32")


def table_rows(ctx, options, spec):
    """The sinusoidal table: `offset` rows more than max_length, positions counting from `offset`."""
    return sinusoidal_table(ctx, options, spec.model.max_length + options.offset, spec.model.width)


def numbered(ctx, options, positions):
    """The table's rows of `positions`: themselves, or shifted by `offset` (fairseq's padding_idx + 1)."""
    if not options.offset:
        return positions
    return ctx.op("add", positions, ctx.constant(options.offset, dtype="int64"), label="PositionOffset")


def build_sinusoidal(ctx, options, spec, hidden, positions, mask):
    with ctx.at("positions"):
        table = table_rows(ctx, options, spec)
        return ctx.op("add", hidden, ctx.op("gather", table, numbered(ctx, options, positions)))


def build_scaled_sinusoidal(ctx, options, spec, hidden, positions, mask):
    with ctx.at("positions"):
        table = table_rows(ctx, options, spec)
        initial = spec.model.width ** -0.5 if options.initial_scale is None else float(options.initial_scale)
        scale = ctx.param("scale", (1,), f"fill={initial!r}")
        return ctx.op("add", hidden, ctx.op("mul", ctx.op("gather", table, numbered(ctx, options, positions)), scale))


def build_learned(ctx, options, spec, hidden, positions, mask):
    table = ctx.param("positions.weight", (spec.model.max_length, spec.model.width), "embedding")
    with ctx.at("positions"):
        return ctx.op("add", hidden, ctx.op("gather", table, positions, label="PositionEmbedding"))


POSITIONS.register("sinusoidal", SinusoidalOptions, PositionalScheme(embed=build_sinusoidal), examples={
    "sinusoidal_concatenated_encoder": """
topology: encoder
positional: {kind: sinusoidal, layout: concatenated, base: 100}
encoder: {layers: 1}
""",
    # Speech2Text's (fairseq's) positions: numbered from padding_idx + 1
    "sinusoidal_fairseq_offset_decoder": """
topology: decoder
positional: {kind: sinusoidal, layout: concatenated, spacing: fairseq, offset: 2}
decoder: {layers: 1}
head: {kind: lm}
""",
})

POSITIONS.register("scaled_sinusoidal", ScaledSinusoidalOptions, PositionalScheme(embed=build_scaled_sinusoidal),
                   examples={
    "scaled_sinusoidal_decoder": """
topology: decoder
positional: scaled_sinusoidal
decoder: {layers: 2}
head: {kind: lm}
""",
})

POSITIONS.register("learned", LearnedOptions, PositionalScheme(embed=build_learned), examples={
    "learned_positions_decoder": """
topology: decoder
positional: learned
decoder: {layers: 1}
head: {kind: lm}
""",
    # lucidrains' HourglassTransformerLM (depth (1, 1, 1)): tests/test_parity_hourglass.py
    "hourglass_attention_resampling_decoder": """
topology: decoder
positional: learned
block: {placement: pre, ffn: {activation: gelu}}
decoder:
  layers: 3
  resample: {shorten_at: [1], upsample_at: 2, queries_only: false, pooling: linear, upsampling: linear,
             attention: true, last_window: zero_filled}
head: {kind: lm, tied: false, bias: true}
""",
})

POSITIONS.register("none", NoPositions, PositionalScheme(), examples={
    "no_positions_encoder": """
topology: encoder
positional: none
encoder: {layers: 1}
""",
})
