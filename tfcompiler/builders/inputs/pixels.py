"""Input layer `pixels`: an image's integer intensities (0..255) in raster-scan order, the input of the Image
Transformer (Parmar et al. 2018), each channel's intensities looked up in their own table of 256 embeddings.

The image is `image: [H, W, C]`, scanned row by row, each row pixel by pixel, the channels innermost: a (B, H, W, C)
array reshaped. The graph input is ``input_ids`` (int64), as Hugging Face's ImageGPT names its colour-cluster ids
(its ``pixel_values`` are the float images the processor reads; the decoder of an encoder-decoder reads
``decoder_input_ids``):

- `channels: positions` (the paper's categorical input): (B, S), one intensity per position, S <= H·W·C; position
  p holds channel p mod C of pixel p div C. Its embedding is row `(p mod C)·256 + intensity` of
  ``intensities.weight`` (C·256, width), tensor2tensor's `get_channel_embeddings` table (the paper: "a channel-specific
  set of 256 d-dimensional embedding vectors"). Decoders generate an image an intensity at a time: the ids they
  pick are fed back as the next positions' intensities, with the KV cache where the attention kind has one.
- `channels: embedding`: (B, S, C), one position per pixel, S <= H·W; the C channels' embeddings concatenated and
  mapped to the width by ``channels.weight`` (C·width, width) plus ``channels.bias``, the paper's 1×C window of
  stride C over the channels.

The channel of a position comes from its position (`position_ids` with a cache, so a left-padded row counts from
its first real intensity), through a constant table of channel offsets: no integer division in the graph. With
`embedding.scale` the looked-up embeddings are scaled, as tensor2tensor scales its table by √width.

`coordinates` adds the paper's positions of the pixel coordinates instead of the raster index's (then
`positional: none`): tensor2tensor's `add_timing_signal_nd` (sinusoidal: the first half of the width encodes the
row, the second the position within the row, column·C + channel (the paper's "column and colour channel"), each
[sin | cos] of timescales 1 .. 10⁴ spaced geometrically over width/4 frequencies) or `add_positional_embedding_nd`
(learned: ``rows.weight`` plus ``columns.weight``). Both are tables gathered by raster position; they cover
model.max_length positions (rows past the image continue the scan), the bound of the positions a model is fed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import Rule
from ..attention.block_local_2d import BlockLocal2DOptions
from .base import StackInput, padding_mask, scaled

INTENSITIES = 256
MAX_TIMESCALE = 1.0e4  # tensor2tensor's add_timing_signal_nd


def _image_grid(value, section, scale):
    """The image's height and width divided by the spec's grid factor, as the 2-D attention's rows and blocks."""
    return [value[0] // scale.grid, value[1] // scale.grid] + list(value[2:]) if len(value) == 3 else value


image_grid = Rule("image_grid", _image_grid, lambda value, section: list(value[:2]) if len(value) == 3 else [])


@dataclass(frozen=True)
class PixelOptions(InputKind):
    """Integer intensities of an image in raster-scan order, each channel's from its own embedding table."""

    PAPER = "Parmar et al. 2018 (Image Transformer)"
    COMPUTES = "int `input_ids`: intensities 0..255 of an [H, W, C] image in raster order, each channel's looked up " \
               "in its own 256-row table; channels as positions (B, H·W·C), or one position per pixel (B, H·W, C) " \
               "with its channels' embeddings mapped to the width; optionally the paper's row / column positions"
    LOWERING = "`Gather`, `Add` (`channels: embedding`: `Reshape`, `MatMul`)"
    no_cache_because: ClassVar[str] = ""  # an intensity's embedding depends on its value and its position alone
    reads_tokens: ClassVar[bool] = True  # ids that generation feeds back (but no `embeddings.tokens.weight` to tie)

    image: list[int] = option([32, 32, 3], doc="The image's [height, width, channels] (H, W, C); the raster scan "
                              "reads rows, then pixels, then channels.", shrink=image_grid)
    channels: str = option("positions", doc="positions: each channel's intensity is a position of its own (the "
                           "paper's categorical input; the sequence is H·W·C long); embedding: one position per "
                           "pixel, its channels' embeddings concatenated and mapped to the width.",
                           choices=("positions", "embedding"))
    coordinates: str = option("none", doc="none: positions come from `positional` (over the raster index); "
                              "sinusoidal or learned: the paper's positions of the row and of the position within "
                              "the row, half the width each (tensor2tensor's add_timing_signal_nd / "
                              "add_positional_embedding_nd), with positional: none.",
                              choices=("none", "sinusoidal", "learned"))

    @property
    def row(self) -> int:
        """Positions along an image row: its pixels, times the channels where channels are positions."""
        return self.image[1] * (self.image[2] if self.channels == "positions" else 1)

    def positions(self) -> int:
        """The sequence length of a whole image."""
        return self.image[0] * self.row

    def parameters(self, spec) -> int:
        if len(self.image) != 3 or min(self.image) < 1:  # (a problem of its own; the size check runs before it)
            return 0
        d, c = spec.model.width, self.image[2]
        combine = (c * d + 1) * d if self.channels == "embedding" else 0
        learned = (-(-spec.model.max_length // self.row) + self.row) * d if self.coordinates == "learned" else 0
        return c * INTENSITIES * d + combine + learned

    def problems(self, spec, where):
        if len(self.image) != 3 or min(self.image) < 1:
            yield At("image", f"expected [height, width, channels], three positive numbers, got {list(self.image)}")
            return
        if spec.topology == "hierarchical":
            yield "a hierarchical model reads documents of token ids: input 'pixels' is for the other topologies"
        height, width, channels = self.image
        if spec.model.max_length < self.positions():
            yield At("image", f"model.max_length must be at least {self.positions():,}, the raster positions of a "
                     f"{height}×{width}×{channels} image with channels as {self.channels}; got "
                     f"{spec.model.max_length:,}", located="model.max_length")
        positional = type(spec.positional).KIND
        if self.coordinates != "none" and positional != "none":
            yield At("coordinates", f"the input adds the {self.coordinates} positions of the pixels' coordinates: "
                     f"set positional: none (got '{positional}')")
        if self.coordinates == "sinusoidal" and spec.model.width < 8:  # timescales spaced over width // 4 - 1 steps
            yield At("coordinates", "sinusoidal coordinates take a quarter of the width for each of sin and cos of "
                     f"the row and of the column, at least two frequencies each: model.width must be at least 8 (got "
                     f"{spec.model.width})")
        yield from self._head_problems(spec)
        yield from self._raster_problems(spec)

    def _head_problems(self, spec):
        """What the head and generation ask of the input the last stack reads (the one they feed back into)."""
        stacks = spec.stacks()
        if not stacks or spec.input_of(stacks[-1][0]) is not self:  # (a missing stack is a problem of its own)
            return
        if spec.generation is not None and self.channels == "embedding":
            yield At("channels", "`generation` feeds back one intensity a position: with channels: embedding a "
                     "position is a whole pixel of several; use channels: positions")
        if spec.head.kind != "lm":
            return
        if self.channels == "embedding":
            yield At("channels", "an LM head predicts one intensity per position, which generation feeds back: with "
                     "channels: embedding a position is a whole pixel of several; use channels: positions")
        if spec.model.vocab_size > INTENSITIES:  # (fewer: the shrunk copies' 64, which predict the darker ones)
            yield At("image", f"an LM head over pixels predicts the next intensity, which generation feeds back: "
                     f"model.vocab_size must be at most {INTENSITIES}, the intensities 0..255 (got "
                     f"{spec.model.vocab_size})", located="model.vocab_size")
        if getattr(spec.head, "tied", False):
            yield At("channels", "the input's tables are per channel, and the paper's output embeddings are their "
                     "own: set head.tied: false (the head's own matrix, lm_head.weight)", located="head.tied")

    def _raster_problems(self, spec):
        """Each local 2-D attention's rows are the image's rows, and its query blocks tile the image (one problem
        for the layers of a stack that share the attention's shape)."""
        shapes: dict[tuple, list[int]] = {}
        for name, _, blocks in spec.stacks():
            for i, block in enumerate(blocks if spec.input_of(name) is self else ()):
                if isinstance(block.attention, BlockLocal2DOptions) and len(block.attention.query_shape) == 2:
                    shapes.setdefault((name, block.attention.row_length, *block.attention.query_shape), []).append(i)
        height = self.image[0]
        for (name, row_length, rows, columns), layers in shapes.items():
            where = f"{name} layer{'s' * (len(layers) > 1)} {', '.join(map(str, layers))} attention 'block_local_2d'"
            located = f"{name}.layers[{layers[0]}].block.attention"  # (the nearest node written: the layer's stack)
            channels = f" × {self.image[2]} channels" if self.channels == "positions" else ""
            if row_length != self.row:
                yield At("image", f"{where}: row_length must be the {self.row} positions of an image row "
                         f"({self.image[1]} pixels{channels}), got {row_length}", located=located)
            elif height % rows or self.row % columns:
                yield At("image", f"{where}: query blocks of {rows}×{columns} do not tile the {height}×{self.row} "
                         f"raster of the image: its rows must be a multiple of {rows} and each row's positions of "
                         f"{columns}", located=located)


def channel_offsets(options: PixelOptions, length: int) -> np.ndarray:
    """(length,) int64: the first row of each raster position's channel in the stacked tables."""
    if options.channels == "embedding":
        return np.zeros(length, np.int64)
    return np.arange(length, dtype=np.int64) % options.image[2] * INTENSITIES


def sinusoidal_coordinates(options: PixelOptions, length: int, width: int) -> np.ndarray:
    """(length, width): tensor2tensor's add_timing_signal_nd over (row, position in the row) of each raster position:
    [sin | cos] of the row in the first half, of the position in the row in the second (zeros past 4·(width // 4))."""
    count = width // 4
    inverse = np.exp(-np.arange(count) * math.log(MAX_TIMESCALE) / (count - 1))
    table = np.zeros((length, width))
    for axis, coordinate in enumerate((np.arange(length) // options.row, np.arange(length) % options.row)):
        angles = coordinate[:, None] * inverse[None, :]
        table[:, 2 * count * axis:2 * count * (axis + 1)] = np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    return table.astype(np.float32)


def build_pixels(ctx, options: PixelOptions, spec, stack_name: str) -> StackInput:
    names = StackInput.input_names(spec, stack_name, own_model=ctx.cache is not None)
    d, length, channels = spec.model.width, spec.model.max_length, options.image[2]
    per_pixel = (channels,) if options.channels == "embedding" else ()
    ids = ctx.input(names.prefix + "input_ids", "int64", names.shape + per_pixel, role="intensities",
                    range=INTENSITIES)
    ctx.graph.metadata.setdefault("images", {})[names.prefix + "input_ids"] = list(options.image)
    mask = padding_mask(ctx, names)
    positions = ctx.cache.position_ids(ctx) if ctx.cache else ctx.op("positions", ids, axis=1)
    table = ctx.param("intensities.weight", (channels * INTENSITIES, d), "embedding")
    if options.channels == "embedding":  # (B, S, C) + each channel's first row -> (B, S, C, D) -> (B, S, C·D)
        rows = ctx.op("add", ids, ctx.constant(np.arange(channels) * INTENSITIES, "int64"))
        embedded = ctx.op("gather", table, rows, label="ChannelEmbeddings")
        stacked = ctx.op("reshape", scaled(ctx, spec, embedded), shape=(0, 0, channels * d))
        hidden = ctx.linear(stacked, d, "channels")
    else:
        offsets = ctx.op("gather", ctx.constant(channel_offsets(options, length), "int64"), positions)
        rows = ctx.op("add", ids, offsets, label="ChannelRows")
        hidden = scaled(ctx, spec, ctx.op("gather", table, rows, label="IntensityEmbedding"))
    if options.coordinates != "none":
        hidden = ctx.op("add", hidden, coordinates(ctx, options, spec, positions), label="Coordinates")
    return StackInput(hidden=hidden, mask=mask, ids=ids)


def coordinates(ctx, options: PixelOptions, spec, positions):
    """(1 or B, S, D): the positions of each raster position's row and place in the row."""
    d, length = spec.model.width, spec.model.max_length
    if options.coordinates == "sinusoidal":
        return ctx.op("gather", ctx.constant(sinusoidal_coordinates(options, length, d)), positions)
    raster = np.arange(length, dtype=np.int64)
    parts = []
    for name, count, index in (("rows", -(-length // options.row), raster // options.row),
                               ("columns", options.row, raster % options.row)):
        where = ctx.op("gather", ctx.constant(index, "int64"), positions)
        parts.append(ctx.op("gather", ctx.param(f"{name}.weight", (count, d), "embedding"), where))
    return ctx.op("add", *parts)


INPUTS.register("pixels", PixelOptions, build_pixels, examples={
    "image_transformer_pixels_local_1d": """
topology: decoder
input: {kind: pixels, image: [3, 4, 3], coordinates: sinusoidal}
positional: none
embedding: {scale: true}
block: {placement: pre, attention: {kind: block_local, block: 6, memory_blocks: 1}, ffn: {activation: relu}}
decoder: {layers: 2}
head: {kind: lm, tied: false, bias: true}
""",
    "image_transformer_pixels_local_2d": """
topology: decoder
input: {kind: pixels, image: [3, 4, 3], coordinates: learned}
positional: none
block: {placement: pre, attention: {kind: block_local_2d, row_length: 12, query_shape: [1, 6], memory_flange: [1, 3]}}
decoder: {layers: 2}
head: {kind: lm, tied: false}
""",
    "pixels_channels_embedded_encoder": """
topology: encoder
input: {kind: pixels, image: [4, 3, 2], channels: embedding}
positional: learned
embedding: {scale: 0.5}
encoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: mean}
""",
    "text_to_pixels_encoder_decoder": """
topology: encoder-decoder
positional: sinusoidal
encoder: {layers: 1}
decoder: {layers: 1, input: {kind: pixels, image: [3, 4, 3]}}
head: {kind: lm, tied: false}
""",
    "pixels_on_raster_positions": """
topology: decoder
input: {kind: pixels, image: [2, 6, 3]}
positional: sinusoidal
decoder: {layers: 1}
head: {kind: lm, tied: false}
""",
})
