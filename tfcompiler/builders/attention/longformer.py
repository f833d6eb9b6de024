"""Attention kind `longformer`: a sliding window (optionally dilated) plus global tokens that see
and are seen by every token (Beltagy et al. 2020). Global tokens are either the first
`global_tokens` positions ([CLS] and the like), fixed when the spec is compiled (the sparsity pass
then lowers the attention to banded blocks with global rows and columns), or, with `global_input`,
the positions the `global_attention_mask` input marks (Hugging Face's convention). Then, as in the
paper and Hugging Face's model, global queries attend every key with their own projections
(`query_global`, `key_global`, `value_global`) and every query also sees the global keys; global
positions are data, so that attention stays dense masked.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from ...ir.patterns import Window, WithGlobal
from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import cap
from .multi_head import MultiHeadOptions, attention_context, build_multi_head, output_projection, project


@dataclass(frozen=True, kw_only=True)
class LongformerOptions(MultiHeadOptions):
    """Sliding window plus global tokens."""

    PAPER = "Beltagy et al. 2020"
    COMPUTES = ("window + global tokens: the leading `global_tokens`, or the `global_attention_mask` input with "
                "separate global projections (`global_input`, Hugging Face's layout)")
    LOWERING = "banded blocks + global rows/columns; dense masked with the input mask"
    no_cache_because: ClassVar[str] = "its global tokens attend every key, later ones included"

    window: int = option(doc="Keys on each side a token sees (Longformer's w/2).",
                         minimum=1, shrink=cap(2), positions=True)
    dilation: int = option(1, doc="See every d-th key of the window.", minimum=1, positions=True)
    global_tokens: int = option(1, doc="Leading tokens with global attention (static).", minimum=0, positions=True)
    global_input: bool = option(False, doc="Global positions from the `global_attention_mask` input "
                                "(1 = global), with separate global projections, as Hugging Face's Longformer.")

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        if self.global_input and self.global_tokens:
            yield "global_input replaces global_tokens: set global_tokens: 0"


def build_longformer(ctx, options: LongformerOptions, spec, site):
    reach = options.window * options.dilation
    window = Window(back=reach, ahead=0 if site.causal else reach, dilation=options.dilation)
    if not options.global_input:
        pattern = WithGlobal(window, options.global_tokens) if options.global_tokens else window
        return build_multi_head(ctx, options, spec, site, pattern)
    m = spec.model
    chosen = ctx.input("global_attention_mask", "int64", ctx.type_of(site.x).shape[:2], role="global_mask")
    local_mask = ctx.op("global_pattern_bias", chosen, pattern=window, rows_see_all=False, label="GlobalPattern")
    local = attention_context(ctx, options, spec, site, *project(ctx, spec, site), masks=(local_mask,))
    query = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query_global", m.bias), m.heads, m.dh)
    key = ctx.split_heads(ctx.linear(site.memory, m.kv * m.dh, "key_global", m.bias), m.kv, m.dh)
    value = ctx.split_heads(ctx.linear(site.memory, m.kv * m.dh, "value_global", m.bias), m.kv, m.dh)
    glob = attention_context(ctx, options, spec, dataclasses.replace(site, state={}), query, key, value)
    rows = ctx.op("unsqueeze", ctx.op("cast", chosen, dtype="bool"), axes=(1, 3))  # (B, 1, S, 1)
    context = ctx.op("where", rows, glob, local, label="GlobalRows")
    return output_projection(ctx, spec, context)


ATTENTION.register("longformer", LongformerOptions, build_longformer, examples={
    "longformer_encoder": """
topology: encoder
block: {attention: {kind: longformer, window: 2, global_tokens: 2}}
encoder: {layers: 2}
""",
    "longformer_global_input": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: longformer, window: 2, global_tokens: 0, global_input: true}}
encoder: {layers: 2}
""",
})
