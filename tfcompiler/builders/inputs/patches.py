"""Input layer `patches`: an image cut into square patches, each linearly embedded (ViT, Dosovitskiy et al. 2021),
with a learned class token in front (and DeiT's distillation token after it, Touvron et al. 2021).

The graph input is ``pixel_values`` (B, channels, image_size, image_size), float, as Hugging Face's ViT names it.
ViT's patch embedding is a Conv2d with kernel = stride = patch_size; here it is the same sum written as a
reshape and transpose to (B, patches, channels·P·P) and one MatMul with ``patches.weight`` (channels·P·P,
width) plus ``patches.bias``: the conv's weight (width, channels, P, P) reshaped to (width, channels·P·P) and
transposed. Patches are numbered row-major, as the conv's output flattened. The class token ``class_token``
(1, 1, width) is prepended; its position is 0. DeiT's ``distillation_token`` (1, 1, width) follows it, before the
patches. Every token is real: the input has no padding mask. The sequence has a fixed length (patches + the tokens
in front), which `model.max_length` must cover (an imported ViT's learned table has exactly that many rows, its
position embeddings).

With `position_grid`, the input adds its own learned positions `positions.weight` (front tokens + grid², width),
learned at another image size: the grid's rows resized bicubically to the image's grid as Hugging Face's
``interpolate_pos_encoding`` does (torch's bicubic, align_corners=False: a = -0.75, borders clamped), the front
tokens' rows as they are. The resize is linear, so it is one constant matrix (blocks: identity for the front tokens,
the two axes' bicubic weights' Kronecker product for the grid) times the table.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.types import BATCH
from ...language.kinds import INPUTS, InputKind
from ...language.rules import At
from ...language.schema import option
from ...language.shrink_rules import Rule
from .base import StackInput, scaled


# the image at most 7×7 patches of the size written (49 + a class token fit the shrunk max_length, 64 at most,
# and never more tokens than the spec had, whose max_length covered them)
patch_grid = Rule("patch_grid", lambda value, section, scale: min(value // _patch(section), 7) * _patch(section))


def _patch(section: dict) -> int:
    return section.get("patch_size", PatchOptions.patch_size)


@dataclass(frozen=True)
class PatchOptions(InputKind):
    """Square image patches, linearly embedded (a strided convolution), after a learned class token."""

    PAPER = "Dosovitskiy et al. 2021 (ViT)"
    COMPUTES = "float `pixel_values` (B, C, H, W) cut into P×P patches, each times a (C·P·P, width) matrix " \
               "plus a bias; a learned class token (and DeiT's distillation token) in front; with `position_grid`, " \
               "its own positions resized bicubically"
    LOWERING = "`Reshape`, `Transpose`, `MatMul`, `Add`, `Concat` (`position_grid`: a constant `MatMul`)"
    no_cache_because: ClassVar[str] = "an image is read whole, not a token at a time"

    image_size: int = option(224, doc="The image's height and width, in pixels.", minimum=1, shrink=patch_grid)
    patch_size: int = option(16, doc="P, a patch's height and width; it must divide `image_size`.", minimum=1)
    channels: int = option(3, doc="C, the image's channels.", minimum=1)
    class_token: bool = option(True, doc="A learned class token `class_token` (1, 1, width) before the patches "
                               "(ViT's [CLS]; a `classifier` head with `pooling: first` reads it).")
    distillation_token: bool = option(False, doc="DeiT's learned distillation token `distillation_token` (1, 1, "
                                      "width), after the class token and before the patches.")
    position_grid: int = option(0, doc="0: positions come from `positional`. Else the side of the patch grid "
                                "the input's own learned positions `positions.weight` were learned at: resized "
                                "bicubically to this image's grid (Hugging Face's interpolate_pos_encoding); needs "
                                "`positional: none`.", minimum=0)

    @property
    def front(self) -> int:
        """The learned tokens before the patches."""
        return self.class_token + self.distillation_token

    @property
    def grid(self) -> int:
        """Patches along each side."""
        return self.image_size // self.patch_size

    def tokens(self) -> int:
        """The sequence length: every patch and the tokens in front."""
        return self.grid ** 2 + self.front

    def parameters(self, spec) -> int:
        positions = self.front + self.position_grid ** 2 if self.position_grid else 0
        return (self.channels * self.patch_size ** 2 + 1 + self.front + positions) * spec.model.width

    def problems(self, spec, where):
        if self.image_size % self.patch_size:
            yield At("patch_size", f"patch_size {self.patch_size} does not divide image_size {self.image_size}: "
                     f"the patches must tile the image (e.g. image_size {max(self.grid, 1) * self.patch_size} or "
                     f"{(max(self.grid, 1) + 1) * self.patch_size})")
            return
        if spec.topology != "encoder":
            yield f"input 'patches' reads an image into an encoder: topology 'encoder', got '{spec.topology}'"
        if self.position_grid and type(spec.positional).KIND != "none":
            yield At("position_grid", "the input adds its own resized positions: set positional: none (got "
                     f"'{type(spec.positional).KIND}')")
        if spec.model.max_length < self.tokens():  # the positional tables' rows
            yield At("image_size", f"model.max_length must be at least {self.tokens()}, the {self.grid}×{self.grid} "
                     f"patches{' and the tokens in front' if self.tokens() > self.grid ** 2 else ''} of a "
                     f"{self.image_size}-pixel image; got {spec.model.max_length}", located="model.max_length")


def build_patches(ctx, options: PatchOptions, spec, stack_name: str) -> StackInput:
    c, p, g = options.channels, options.patch_size, options.grid
    pixels = ctx.input("pixel_values", "float32", (BATCH, c, options.image_size, options.image_size),
                       role="pixel_values")
    # (B, C, g·P, g·P) -> (B, C, g, P, g, P) -> (B, g, g, C, P, P) -> (B, g·g, C·P·P): row-major patches,
    # each flattened as the conv weight's (C, P, P)
    grid_BCgPgP = ctx.op("reshape", pixels, shape=(0, c, g, p, g, p))
    grid_BggCPP = ctx.op("transpose", grid_BCgPgP, perm=(0, 2, 4, 1, 3, 5))
    patches_BNF = ctx.op("reshape", grid_BggCPP, shape=(0, g * g, c * p * p), label="Patches")
    hidden = scaled(ctx, spec, ctx.linear(patches_BNF, spec.model.width, "patches"))
    in_front = [name for name in ("class_token", "distillation_token") if getattr(options, name)]  # options.front
    if in_front:
        tokens = [ctx.op("tile_batch", ctx.param(name, (1, 1, spec.model.width), "embedding"), hidden)
                  for name in in_front]
        hidden = ctx.op("concat", *tokens, hidden, axis=1, label="TokensInFront")
    if options.position_grid:
        table = ctx.param("positions.weight", (options.front + options.position_grid ** 2, spec.model.width),
                          "embedding")
        resize = ctx.constant(resized_positions(options.front, options.position_grid, g))
        hidden = ctx.op("add", hidden, ctx.op("matmul", resize, table, label="InterpolatePositions"))
    return StackInput(hidden=hidden, mask=None, ids=hidden)  # positions count along the tokens (axis 1)


def bicubic(size_in: int, size_out: int, a: float = -0.75) -> np.ndarray:
    """(size_out, size_in): torch's bicubic resize along one axis, align_corners=False (the source of output
    o at (o + 0.5)·in/out - 0.5, the four taps around it clamped to the edges)."""
    weights = np.zeros((size_out, size_in))
    for o in range(size_out):
        source = (o + 0.5) * size_in / size_out - 0.5
        left = int(np.floor(source))
        t = source - left
        for tap, x in zip(range(left - 1, left + 3), (t + 1, t, 1 - t, 2 - t)):
            near = ((a + 2) * x - (a + 3)) * x * x + 1  # |x| <= 1
            far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # 1 < |x| < 2
            weights[o, min(max(tap, 0), size_in - 1)] += near if abs(x) <= 1 else far
    return weights


def resized_positions(front: int, grid_in: int, grid_out: int) -> np.ndarray:
    """(front + grid_out², front + grid_in²): the front tokens' rows kept, the row-major grid resized."""
    axis = bicubic(grid_in, grid_out)
    matrix = np.zeros((front + grid_out ** 2, front + grid_in ** 2))
    matrix[:front, :front] = np.eye(front)
    matrix[front:, front:] = np.kron(axis, axis)
    return matrix  # positions count along the tokens (axis 1)


INPUTS.register("patches", PatchOptions, build_patches, examples={
    "vit_patches_classifier": """
topology: encoder
input: {kind: patches, image_size: 12, patch_size: 4, channels: 3}
positional: learned
block: {placement: pre, ffn: {activation: gelu}}
encoder: {layers: 2}
head: {kind: classifier, labels: 3, pooling: first, dense: false}
""",
    "patches_without_class_token": """
topology: encoder
input: {kind: patches, image_size: 6, patch_size: 2, channels: 1, class_token: false}
positional: {kind: sinusoidal}
block: {placement: pre}
encoder: {layers: 1}
head: {kind: pooler}
""",
    "patches_with_interpolated_positions": """
topology: encoder
input: {kind: patches, image_size: 15, patch_size: 3, channels: 2, position_grid: 3}
positional: none
block: {placement: pre}
encoder: {layers: 1}
head: {kind: none}
""",
    "deit_distilled_patches": """
topology: encoder
input: {kind: patches, image_size: 8, patch_size: 4, channels: 2, distillation_token: true}
positional: learned
block: {placement: pre, ffn: {activation: gelu}}
encoder: {layers: 1}
head: {kind: none}
""",
})
