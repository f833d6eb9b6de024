"""Positional scheme `window_offset`: the learned relative positions of lucidrains'
compressive-transformer-pytorch. Every head learns a key vector per row of a table of `length` rows;
query a of the segment (0-based) and key b of the window [compressed memory; memory; segment]
(0-based) score

  e_ab = q_a · (k_b + P_h[clip(b - a + segment - 1, 0, length - 1)]) / √d

The package computes q·P and applies Transformer-XL's relative shift to the rows of its table that
the current window covers, which reads the row above: it depends on the key's place in the window,
so a given query-key distance moves to other rows while the memories fill up, and settles once they
are full (row length - 1 - distance). The score per row is computed once, q · Pᵀ (B, H, S, length),
and read out per key with take_relative, as `shaw` does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class WindowOffsetOptions(PositionalKind):
    """A learned key vector per head and per key-window offset (compressive-transformer-pytorch)."""

    PAPER = "compressive-transformer-pytorch (lucidrains)"
    COMPUTES = "q·P_h[b − a + segment − 1], a learned key per head and window offset"
    LOWERING = "q·Pᵀ per row (`Einsum`) + `GatherElements`"

    segment: int = option(doc="The package's seq_len: row segment - 1 is the offset of a query's own key "
                          "in a window without memory.", minimum=1, shrink=cap(4))
    length: int = option(doc="Rows of the table (the package's seq_len + mem_len + cmem_len); offsets past "
                         "either end take the end row.", minimum=1, shrink=cap(8))

    numbers_from_segment_start: ClassVar[bool] = False  # its rows are offsets within the key window
    no_cache_because: ClassVar[str] = "its rows count each query's place from the start of the call's segment"

    def layer_parameters(self, spec) -> int:
        return spec.model.heads * self.length * spec.model.dh

    def problems(self, spec, where):
        if self.length < self.segment:
            yield f"window_offset needs length >= segment (the rows of a window without memory), got " \
                  f"{self.length} < {self.segment}"


def window_offset(ctx, options: WindowOffsetOptions, spec, parts, site):
    heads, dh = ctx.type_of(parts.query).shape[1], ctx.type_of(parts.query).shape[-1]
    with ctx.at("relative"):
        queries = ctx.op("transpose", ctx.op("positions", parts.query, axis=2), perm=(1, 0))  # (S, 1)
        offsets = ctx.op("sub", ctx.op("positions", parts.key, axis=2), queries)  # (S, T): b - a
        index = ctx.op("clip", ctx.op("add", offsets, ctx.constant(options.segment - 1, "int64")),
                       low=0, high=options.length - 1, label="WindowOffset")
        table = ctx.param("key.weight", (heads, options.length, dh), "embedding")
        per_row = ctx.op("einsum", parts.query, table, equation="bhsd,hld->bhsl")
        scores = ctx.op("take_relative", per_row, index, label="WindowOffsetKeyTerm")
        parts.add_bias(ctx.op("mul", scores, ctx.constant(np.float32(parts.scale))))
    return parts


POSITIONS.register("window_offset", WindowOffsetOptions, PositionalScheme(attend=window_offset), examples={
    "window_offset_decoder": """
topology: decoder
positional: {kind: window_offset, segment: 8, length: 20}
decoder: {layers: 2}
head: {kind: lm}
""",
    "window_offset_encoder_clipped": """
topology: encoder
positional: {kind: window_offset, segment: 3, length: 4}
encoder: {layers: 1}
""",
})
