"""Attention kind `longformer`: a sliding window (optionally dilated) plus global tokens that see
and are seen by every token (Beltagy et al. 2020). The global tokens are the first `global_tokens`
positions ([CLS] and the like), fixed when the spec is compiled.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.patterns import WithGlobal, Window
from ...spec.kinds import ATTENTION
from ...spec.schema import option
from .multi_head import MultiHeadOptions, build_multi_head


@dataclass(frozen=True, kw_only=True)
class LongformerOptions(MultiHeadOptions):
    """Sliding window plus leading global tokens."""

    window: int = option(doc="Keys on each side a token sees (Longformer's w/2).", minimum=1)
    dilation: int = option(1, doc="See every d-th key of the window.", minimum=1)
    global_tokens: int = option(1, doc="Leading tokens with global attention.", minimum=0)


def build_longformer(ctx, options: LongformerOptions, spec, site):
    reach = options.window * options.dilation
    window = Window(back=reach, ahead=0 if site.causal else reach, dilation=options.dilation)
    pattern = WithGlobal(window, options.global_tokens) if options.global_tokens else window
    return build_multi_head(ctx, options, spec, site, pattern)


ATTENTION.register("longformer", LongformerOptions, build_longformer)
