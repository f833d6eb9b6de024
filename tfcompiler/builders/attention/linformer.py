"""Attention kind `linformer` (Wang et al. 2020): keys and values projected along the sequence to
k rows, K' = E K and V' = F V with E, F (k, n), n = model.max_length, so attention costs n·k.

A shorter input uses the first T columns of E and F (the convention of lucidrains' linformer;
zero-padding the input to n instead gives different numbers) and padded keys are zeroed before the
projection. `share`: none (E and F per layer, shared by the heads), key_value (E = F), layerwise
(one E = F for every layer of the stack). Bidirectional only: E mixes future tokens into every key.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .lowrank import bidirectional_only, key_weights
from .multi_head import output_projection, project
from .parts import AttentionParts, emit_attention


@dataclass(frozen=True, kw_only=True)
class LinformerOptions(AttentionKind):
    """Keys and values projected along the sequence (Wang et al. 2020)."""

    PAPER = "Wang et al. 2020"
    COMPUTES = "K, V projected along the sequence (sharing none / key_value / layerwise)"
    LOWERING = "MatMul + attention over k keys"

    projected_length: int = option(256, doc="k: rows of the projected keys and values.", minimum=1, shrink=cap(4))
    share: str = option("none", doc="none, key_value (E = F) or layerwise (one E = F per stack).",
                        choices=("none", "key_value", "layerwise"))

    def problems(self, spec, where):
        yield from bidirectional_only("linformer", spec)


def build_linformer(ctx, options: LinformerOptions, spec, site):
    m = spec.model
    query, key, value = project(ctx, spec, site)
    shape = (options.projected_length, m.max_length)
    if options.share == "layerwise":
        with ctx.at_path(f"{site.state['stack']}.linformer"):
            e = f = ctx.param("projection", shape, "matrix")
    elif options.share == "key_value":
        e = f = ctx.param("projection", shape, "matrix")
    else:
        e, f = ctx.param("key_projection", shape, "matrix"), ctx.param("value_projection", shape, "matrix")
    keep = key_weights(ctx, site.mask)
    projected = []
    for matrix, x in ((e, key), (f, value)):
        cut = ctx.op("leading", matrix, key, axis=1, like_axis=2)  # (k, T): the first T columns
        projected.append(ctx.op("einsum", cut, ctx.op("mul", x, keep), equation="kt,bhtd->bhkd",
                                label="ProjectSequence"))
    parts = AttentionParts(query, *projected, scale=m.dh ** -0.5, causal=False)
    context, _ = emit_attention(ctx, parts)
    return output_projection(ctx, spec, context)


ATTENTION.register("linformer", LinformerOptions, build_linformer, examples={
    "linformer_encoder": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: linformer, projected_length: 6}}
encoder: {layers: 2}
""",
    "linformer_shared_layerwise": """
topology: encoder
block: {attention: {kind: linformer, projected_length: 4, share: layerwise}}
encoder:
  layers: 2
  overrides:
    - layers: [1, 1]
      block: {attention: {kind: linformer, projected_length: 4, share: key_value}}
""",
})
