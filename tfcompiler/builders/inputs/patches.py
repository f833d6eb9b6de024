"""Input layer `patches`: an image cut into square patches, each linearly embedded (ViT, Dosovitskiy et al. 2021),
with a learned class token in front (and DeiT's distillation token after it, Touvron et al. 2021).

The graph input is ``pixel_values`` (B, channels, image_size, image_size), float, as Hugging Face's ViT names it.
ViT's patch embedding is a Conv2d with kernel = stride = patch_size; here it is the same sum written as a
reshape and transpose to (B, patches, channels·P·P) and one MatMul with ``patches.weight`` (channels·P·P,
width) plus ``patches.bias``: the conv's weight (width, channels, P, P) reshaped to (width, channels·P·P) and
transposed. Patches are numbered row-major, as the conv's output flattened. The class token
``class_token`` (1, 1, width) is prepended; its position is 0. DeiT's ``distillation_token`` (1, 1, width)
follows it, before the patches. Every token is real: the input has no
padding mask. The sequence has a fixed length (patches + the tokens in front), which `model.max_length` must cover (an
imported ViT's learned table has exactly that many rows, its position embeddings).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

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
               "plus a bias; a learned class token in front"
    LOWERING = "`Reshape`, `Transpose`, `MatMul`, `Add`, `Concat`"
    no_cache_because: ClassVar[str] = "an image is read whole, not a token at a time"

    image_size: int = option(224, doc="The image's height and width, in pixels.", minimum=1, shrink=patch_grid)
    patch_size: int = option(16, doc="P, a patch's height and width; it must divide `image_size`.", minimum=1)
    channels: int = option(3, doc="C, the image's channels.", minimum=1)
    class_token: bool = option(True, doc="A learned class token `class_token` (1, 1, width) before the patches "
                               "(ViT's [CLS]; a `classifier` head with `pooling: first` reads it).")
    distillation_token: bool = option(False, doc="DeiT's learned distillation token `distillation_token` (1, 1, "
                                      "width), after the class token and before the patches.")

    @property
    def grid(self) -> int:
        """Patches along each side."""
        return self.image_size // self.patch_size

    def tokens(self) -> int:
        """The sequence length: every patch and the tokens in front."""
        return self.grid ** 2 + self.class_token + self.distillation_token

    def parameters(self, spec) -> int:
        return (self.channels * self.patch_size ** 2 + 1 + self.class_token + self.distillation_token) \
            * spec.model.width

    def problems(self, spec, where):
        if self.image_size % self.patch_size:
            yield At("patch_size", f"patch_size {self.patch_size} does not divide image_size {self.image_size}: "
                     f"the patches must tile the image (e.g. image_size {max(self.grid, 1) * self.patch_size} or "
                     f"{(max(self.grid, 1) + 1) * self.patch_size})")
            return
        if spec.topology != "encoder":
            yield f"input 'patches' reads an image into an encoder: topology 'encoder', got '{spec.topology}'"
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
    in_front = [name for name in ("class_token", "distillation_token") if getattr(options, name)]
    if in_front:
        tokens = [ctx.op("tile_batch", ctx.param(name, (1, 1, spec.model.width), "embedding"), hidden)
                  for name in in_front]
        hidden = ctx.op("concat", *tokens, hidden, axis=1, label="TokensInFront")
    return StackInput(hidden=hidden, mask=None, ids=hidden)  # positions count along the tokens (axis 1)


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
    "deit_distilled_patches": """
topology: encoder
input: {kind: patches, image_size: 8, patch_size: 4, channels: 2, distillation_token: true}
positional: learned
block: {placement: pre, ffn: {activation: gelu}}
encoder: {layers: 1}
head: {kind: none}
""",
})
