"""Attention kind `sliding_window`: each token attends the `window` tokens before it (and, in
bidirectional stacks, after it), optionally only every `dilation`-th of them (local attention;
Longformer's dilated window, Beltagy et al. 2020). Decoders see only the past side.

The pattern is a static attribute of the attention op: the dense lowering masks it; the
`sparsify_attention` pass turns it into banded blocks whose cost grows with n·w, not n².

lucidrains' local-attention (`LocalMHA`, exact window) is this kind with rotary positions, except that
in bidirectional stacks its queries are rotated at their positions + w: it rotates each block of w
queries with the last w positions of its look-around bucket (the block before, its own, the block
after), one block past its own keys (`query_rotation: window_ahead`; its decoders look at no block
after, and rotate queries at their own positions).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Window
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import cap
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class SlidingWindowOptions(MultiHeadOptions):
    """Local attention over a window of neighbours."""

    PAPER = "local / Longformer's dilated window"
    COMPUTES = "keys within `window` (every `dilation`-th)"
    LOWERING = "banded blocks (sparsity pass), O(n·w)"
    cached_as: ClassVar[str] = "the last `window` × `dilation` keys and values, however long it runs"

    window: int = option(doc="Keys on each side a token sees (w: |i - j| <= w).",
                         minimum=1, shrink=cap(2), positions=True)
    dilation: int = option(1, doc="See every d-th key of the window (dilated window).", minimum=1, positions=True)
    query_rotation: str = option("own", doc="The positions rotary positions rotate the queries with: their own, "
                                 "or in bidirectional stacks their own + window·dilation (window_ahead: lucidrains' "
                                 "local-attention, whose queries take the last positions of their look-around "
                                 "bucket); decoders rotate them at their own either way.",
                                 choices=("own", "window_ahead"))

    def problems(self, spec, where):
        yield from super().problems(spec, where)
        positional = getattr(where.owner, "positional", None) or spec.positional
        if self.query_rotation != "own" and positional.KIND != "rope":
            yield f"query_rotation: {self.query_rotation} shifts rotary positions: it needs positional 'rope'"


def build_sliding_window(ctx, options: SlidingWindowOptions, spec, site):
    reach = options.window * options.dilation
    if options.query_rotation == "window_ahead" and not site.causal:
        site = dataclasses.replace(site, query_shift=reach)
    pattern = Window(back=reach, ahead=0 if site.causal else reach, dilation=options.dilation)
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("sliding_window", SlidingWindowOptions, build_sliding_window, examples={
    "sliding_window_decoder": """
topology: decoder
model: {kv_heads: 2}
positional: rope
block: {attention: {kind: sliding_window, window: 3}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "local_attention_lucidrains_encoder": """
topology: encoder
positional: rope
block: {attention: {kind: sliding_window, window: 3, query_rotation: window_ahead}}
encoder: {layers: 2}
""",
    "dilated_window_encoder": """
topology: encoder
block: {attention: {kind: sliding_window, window: 2, dilation: 2}}
encoder: {layers: 2}
""",
})
