"""Attention kind `sparse_transformer`: the factorised patterns of the Sparse Transformer (Child et
al. 2019), both factors merged in every head:

- strided: the previous `stride` positions, and every position a multiple of `stride` away;
- fixed: the query's own block of `stride` positions, and the last `summary` positions of every
  block (the "summary" cells).

In decoders the causal mask removes the future half.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Fixed, Strided
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import at_most, cap
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class SparseTransformerOptions(MultiHeadOptions):
    """Strided or fixed factorised sparse attention (Child et al. 2019)."""

    PAPER = "Child et al. 2019"
    COMPUTES = "strided or fixed factorised pattern"
    LOWERING = ("fixed: each block with every block's summary keys, O(n·(l + n·c/l)); strided: banded blocks of l + "
                "the keys at the query's offset in every other block, O(n·(3l + n/l))")
    left_padding_shifts: ClassVar[str] = "its fixed blocks are counted from the first column"

    pattern: str = option("strided", doc="strided or fixed.", choices=("strided", "fixed"))
    stride: int = option(doc="l: the stride or block length (about √n in the paper).", minimum=1, shrink=cap(2))
    summary: int = option(1, doc="c: summary positions per block (fixed pattern).", minimum=1, shrink=at_most("stride"))

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if self.summary > self.stride:
            yield f"summary ({self.summary}) must be at most the stride ({self.stride})"


def build_sparse_transformer(ctx, options: SparseTransformerOptions, spec, site):
    pattern = Strided(options.stride) if options.pattern == "strided" else Fixed(options.stride, options.summary)
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("sparse_transformer", SparseTransformerOptions, build_sparse_transformer, examples={
    "sparse_transformer_strided": """
topology: decoder
block: {attention: {kind: sparse_transformer, stride: 3}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "sparse_transformer_fixed": """
topology: encoder
block: {attention: {kind: sparse_transformer, pattern: fixed, stride: 4, summary: 2}}
encoder: {layers: 2}
""",
})
