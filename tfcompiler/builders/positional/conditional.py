"""Positional scheme `conditional`: conditional positional encoding (CPVT, Chu et al. 2021). A
position encoding generator x + DWConv_k×k(x) reads the tokens as a 2-D grid (row-major, rows ×
`grid_width`, rows from the length at run time) with leading class tokens kept aside; positions come
from zero padding at the grid's edges, so any grid height works. Padded tokens enter the convolution
as zeros, like the grid's edges, so what padding holds never reaches a real token.

At the model level it acts on the embeddings; as a block's `positional` it acts on that block's
input, which is where CPVT puts it (after the first block: an override on layer 1).
Lowered to ONNX Conv with group = width (see grid_conv).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from ...language.shrink_rules import grid
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class ConditionalOptions(PositionalKind):
    """A depth-wise convolution over the token grid, added to the tokens."""

    PAPER = "Chu et al. 2021 (CPVT)"
    COMPUTES = "x + depth-wise k×k conv of the tokens on a grid (padded tokens read as zeros)"
    LOWERING = "`Conv` with group = width"
    no_cache_because: ClassVar[str] = "its convolution reads the neighbouring embeddings of every position"

    grid_width: int = option(doc="Tokens per grid row (the sequence, minus class tokens, must fill "
                             "whole rows).", minimum=1, shrink=grid)
    kernel: int = option(3, doc="Odd kernel size k of the k×k depth-wise convolution.", minimum=1)
    class_tokens: int = option(0, doc="Leading tokens outside the grid (left unchanged).", minimum=0)

    def problems(self, spec, where):
        if self.kernel % 2 == 0:
            yield f"kernel must be odd, got {self.kernel}"


def generate(ctx, options: ConditionalOptions, spec, hidden, positions, mask):
    d, k = spec.model.width, options.kernel
    # lengths this model accepts: class tokens + whole grid rows (recorded in the ONNX metadata)
    axis = ctx.type_of(hidden).shape[1]
    ctx.graph.metadata.setdefault("length_rules", {})[axis] = (options.class_tokens, options.grid_width)
    with ctx.at("position_generator"):
        weight = ctx.param("weight", (d, 1, k, k), "embedding")
        bias = ctx.param("bias", (d,), "zeros")
        tokens = hidden if mask is None else ctx.op("mul", hidden, ctx.op("cast", ctx.op("unsqueeze", mask, axes=(2,)),
                                                                            dtype="float32"))
        conv = ctx.op("grid_conv", tokens, weight, bias, grid_width=options.grid_width,
                      skip=options.class_tokens, label="PEG")
        return ctx.op("add", hidden, conv)


POSITIONS.register("conditional", ConditionalOptions, PositionalScheme(embed=generate), examples={
    "conditional_after_first_block": """
topology: encoder
positional: none
encoder:
  layers: 3
  overrides:
    - layers: [1, 1]
      block: {positional: {kind: conditional, grid_width: 2, class_tokens: 1}}
""",
    "conditional_embeddings": """
topology: encoder
positional: {kind: conditional, grid_width: 2, kernel: 5, class_tokens: 1}
encoder: {layers: 1}
""",
})
