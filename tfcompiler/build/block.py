"""One transformer block: self-attention, optional cross-attention (decoder of an encoder-decoder)
and FFN, each a residual sublayer with its norm before (pre-norm: x + f(norm(x))) or after
(post-norm: norm(x + f(x)), the paper's and BERT's placement)."""
from __future__ import annotations

from ..spec.kinds import ATTENTION
from ..spec.model import Block
from .ffn import build_ffn
from .norm import build_norm


def residual(ctx, x, block: Block, name: str, sublayer):
    """Wrap ``sublayer`` (a function of the normalised or raw input) with its residual and norm."""
    if block.placement == "pre":
        return ctx.op("add", x, sublayer(build_norm(ctx, x, block.norm, f"{name}_norm")), label="Residual")
    return build_norm(ctx, ctx.op("add", x, sublayer(x), label="Residual"), block.norm, f"{name}_norm")


def build_block(ctx, block: Block, spec, x, mask, causal: bool, encoder=None, positions=None):
    """encoder = (hidden, mask) of the encoder for cross-attention, or None; positions (1, S) of
    the tokens, for schemes that act inside self-attention (cross-attention gets none)."""
    attend = ATTENTION.builder(block.attention)

    def self_attention(h):
        with ctx.at("attention"):
            return attend(ctx, block.attention, spec, h, h, mask, causal, positions)

    x = residual(ctx, x, block, "attention", self_attention)
    if encoder is not None:
        memory, memory_mask = encoder

        def cross_attention(h):
            with ctx.at("cross_attention"):
                return attend(ctx, block.attention, spec, h, memory, memory_mask, False, None)

        x = residual(ctx, x, block, "cross_attention", cross_attention)
    return residual(ctx, x, block, "ffn", lambda h: build_ffn(ctx, h, block.ffn, spec))
