"""Attention kind `induced`: induced set attention, the attention core of the Set Transformer's ISAB
(Lee et al. 2019). `points` learned inducing points first attend the tokens, H = MHA(I, X, X), then
the tokens attend them, MHA(X, H, H): O(n·m) instead of O(n²). Each hop is a full multi-head
attention with its own projections (`induce`, `broadcast`); padded tokens are hidden in the first
hop. The surrounding block supplies the residuals, norms and FFN (the paper's MAB). Bidirectional.
With `latents_output` the induced points H are an output too, as isab-pytorch's ISAB returns them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION
from ...language.schema import option
from ...language.shrink_rules import cap
from .lowrank import bidirectional_only
from .multi_head import MultiHeadOptions, build_multi_head
from .parts import Site


@dataclass(frozen=True, kw_only=True)
class InducedOptions(MultiHeadOptions):
    """Attention through learned inducing points (Set Transformer ISAB)."""

    PAPER = "Set Transformer ISAB (Lee et al. 2019)"
    COMPUTES = ("learned inducing points attend the tokens, the tokens attend them (PMA pooling: `head: {kind: "
                "set_pool}`)")
    LOWERING = "two attentions over m points"
    no_cache_because: ClassVar[str] = (
        "its inducing points summarise the whole set, so every output changes with a new"
        "element")

    points: int = option(32, doc="m: inducing points.", minimum=1, shrink=cap(4))
    latents_output: bool = option(False, doc="Also output the inducing points after their first hop, H = "
                                  "MHA(I, X, X) (batch, points, width), as `induced_latents.N` for the stack's N-th "
                                  "induced layer (counted from 0): what isab-pytorch's ISAB returns beside its "
                                  "output.")

    def problems(self, spec, where):
        yield from MultiHeadOptions.problems(self, spec, where)
        yield from bidirectional_only("induced", spec)


def build_induced(ctx, options: InducedOptions, spec, site):
    points = ctx.param("inducing_points", (1, options.points, spec.model.width), "embedding")
    points = ctx.op("tile_batch", points, site.x)  # (B, m, D)
    with ctx.at("induce"):
        induced = build_multi_head(ctx, options, spec, Site(points, site.memory, site.mask, False, state=site.state))
    if options.latents_output:
        index = site.state["induced_layers"] = site.state.get("induced_layers", -1) + 1
        ctx.graph.outputs[f"induced_latents.{index}"] = induced
    with ctx.at("broadcast"):
        return build_multi_head(ctx, options, spec, Site(site.x, induced, None, False, state=site.state))


ATTENTION.register("induced", InducedOptions, build_induced, examples={
    "induced_set_attention": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: induced, points: 3}}
encoder: {layers: 2}
""",
    "induced_latents_output": """
topology: encoder
block: {attention: {kind: induced, points: 3, latents_output: true}}
encoder: {layers: 2}
""",
})
