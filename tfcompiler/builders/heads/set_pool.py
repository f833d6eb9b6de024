"""Head `set_pool`: the Set Transformer's pooling by multi-head attention (PMA, Lee et al. 2019): `seeds`
learned vectors attend the outputs."""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import HEADS, HeadKind
from ...language.schema import option
from ...language.size import attention_parameters
from ..attention.multi_head import MultiHeadOptions, build_multi_head
from ..attention.parts import Site
from ..ffn import build_ffn
from ..norm import build_norm


@dataclass(frozen=True, kw_only=True)
class SetPoolHead(HeadKind):
    """`seeds` pooled vectors per set."""

    PAPER = "Lee et al. 2019 (Set Transformer's PMA)"
    COMPUTES = "`pooler_output` (B, seeds, D) = MAB(S, rFF(Z)), MAB(X, Y) = LN(H + rFF(H)), " \
               "H = LN(X + MHA(X, Y, Y)), beside `last_hidden_state`"
    LOWERING = "the multi-head attention's and FFN's ops, `Tile` for the seeds"

    seeds: int = option(1, doc="Pooled vectors (PMA's k).", minimum=1)

    def parameters(self, spec) -> int:
        return self.seeds * spec.model.width + attention_parameters(spec.model) + 2 * spec.model.width


def build_set_pool(ctx, options: SetPoolHead, spec, hidden, mask) -> dict:
    """PMA_k(Z) = MAB(S, rFF(Z)): k learned seeds S attend the row-wise transformed outputs, padding
    hidden; the last block's FFN and norm settings serve as rFF and LN. (B, S, D) -> (B, k, D)."""
    last = spec.stacks()[-1][2][-1]
    m, norm, ffn = spec.model, last.norm, last.ffn
    with ctx.at("pooler"):
        seeds = ctx.op("tile_batch", ctx.param("seeds", (1, options.seeds, m.width), "embedding"), hidden)
        with ctx.at("input"):
            keys = build_ffn(ctx, hidden, ffn, spec)
        with ctx.at("attention"):
            site = Site(seeds, keys, mask, False)
            attended = build_multi_head(ctx, MultiHeadOptions(), spec, site)
        h = build_norm(ctx, ctx.op("add", seeds, attended), norm, "attention_norm")
        with ctx.at("output"):
            transformed = build_ffn(ctx, h, ffn, spec)
        pooled = build_norm(ctx, ctx.op("add", h, transformed), norm, "output_norm")
    return {"last_hidden_state": hidden, "pooler_output": pooled}


HEADS.register("set_pool", SetPoolHead, build_set_pool, examples={
    "set_transformer": """
topology: encoder
model: {kv_heads: 2}
positional: none
block: {attention: {kind: induced, points: 3}, ffn: {activation: relu}}
encoder: {layers: 2}
head: {kind: set_pool, seeds: 2}
""",
})
