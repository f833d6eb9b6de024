"""One transformer block: self-attention, optional cross-attention (decoder of an encoder-decoder)
and FFN, each a residual sublayer with its norm before (pre-norm: x + f(norm(x))) or after
(post-norm: norm(x + f(x)), the paper's and BERT's placement); or Reformer's reversible block over
two streams (x1, x2) -> (x1 + attention(norm(x2)), x2 + ffn(norm(y1))).

A block's own `positional` replaces the model's inside its self-attention; if that scheme also acts
on embeddings (sinusoidal, learned, conditional), it is applied to the block's input."""
from __future__ import annotations

from ..language.kinds import ATTENTION, POSITIONS
from ..language.model import Block
from .attention.parts import Site
from .ffn import build_ffn
from .gru_cell import gru_cell
from .norm import build_norm


def residual(ctx, x, block: Block, name: str, sublayer):
    """Wrap ``sublayer`` (a function of the normalised or raw input) with its residual and norm."""
    if block.placement == "none":
        return sublayer(x)
    if block.placement == "pre":
        return join(ctx, x, sublayer(build_norm(ctx, x, block.norm, f"{name}_norm")), block, name)
    return build_norm(ctx, join(ctx, x, sublayer(x), block, name), block.norm, f"{name}_norm")


def join(ctx, x, out, block: Block, name: str):
    """x + out, or GRUCell(out, x): the sublayer's output gated against the residual stream."""
    if block.residual == "gru":
        return gru_cell(ctx, out, x, scope=f"{name}_gru", label="GatedResidual")
    return ctx.op("add", x, out, label="Residual")


def at_real_queries(ctx, options, out, mask, cache):
    """The sublayer's output (B, S, D), zeroed at padded queries when the kind's options say so
    (`padded_queries: zero`, x-transformers); ``mask`` is the queries' own (B, S), or with a cache
    the past tokens' and theirs."""
    if options.padded_queries == "attend" or mask is None:
        return out
    if cache is not None:
        mask = ctx.op("trailing", mask, out, axis=1, like_axis=1, label="NewTokensMask")
    keep = ctx.op("cast", ctx.op("unsqueeze", mask, axes=(2,)), dtype="float32")  # (B, S, 1)
    return ctx.op("mul", out, keep, label="ZeroPaddedQueries")


def build_block(ctx, block: Block, spec, x, mask, causal: bool, positions, state: dict, encoder=None,
                memory=None, unpooled=None, levels=(0, 0), cache=None):
    """x (B, S, D); mask (B, S) or None (of the keys); positions (1, S) of the tokens; ``state`` is
    shared by the stack's blocks (residual scores, biases computed once per stack); encoder =
    (hidden, mask) for cross-attention, or None; memory = (states (B, M, D) that entered this block in
    earlier segments, their mask (B, M), whether they are normalised already) for Transformer-XL
    recurrence, or None; unpooled = the full-length input (B, T, D) that a pooling layer's queries x
    attend (Funnel), and levels = how many poolings the queries and the keys are from the tokens;
    cache = the self-attention's LayerCache (tfcompiler.builders.cache) in a decoder compiled for
    incremental decoding."""
    attend = ATTENTION.builder(block.attention)
    positional = block.positional if block.positional is not None else spec.positional
    if block.positional is not None and POSITIONS.builder(positional).embed is not None:
        x = POSITIONS.builder(positional).embed(ctx, positional, spec, x, positions, mask)

    def self_attention(h):
        out = attended(h)
        with ctx.at("attention"):
            return at_real_queries(ctx, block.attention, out, mask, cache)

    def attended(h):
        if unpooled is not None:  # keys normalised as the queries were
            keys = build_norm(ctx, unpooled, block.norm, "attention_norm") if block.placement == "pre" else unpooled
            with ctx.at("attention"):
                return attend(ctx, block.attention, spec,
                              Site(h, keys, mask, causal, positions, positional, state, levels=levels))
        if memory is None:
            with ctx.at("attention"):
                return attend(ctx, block.attention, spec,
                              Site(h, h, mask, causal, positions, positional, state, levels=levels, cache=cache))
        states, memory_mask, normalized = memory  # keys: the earlier states, normalised as x is, then x's own
        if block.placement == "pre" and not normalized:
            states = build_norm(ctx, states, block.norm, "attention_norm")
        keys = ctx.op("concat", states, h, axis=1, label="WithMemory")
        key_mask = ctx.op("concat", memory_mask, mask, axis=1) if mask is not None else None
        with ctx.at("attention"):
            return attend(ctx, block.attention, spec,
                          Site(h, keys, key_mask, causal, positions, positional, state, recurrent=True))

    if block.placement == "reversible":  # x = (x1, x2): the attention reads x2 into x1, the FFN y1 into x2
        x1, x2 = x
        y1 = ctx.op("add", x1, self_attention(build_norm(ctx, x2, block.norm, "attention_norm")), label="Residual")
        ffn = build_ffn(ctx, build_norm(ctx, y1, block.norm, "ffn_norm"), block.ffn, spec)
        return y1, ctx.op("add", x2, ffn, label="Residual")
    x = residual(ctx, x, block, "attention", self_attention)
    if encoder is not None:
        memory, memory_mask = encoder

        cross = block.cross_attention if block.cross_attention is not None else block.attention

        def cross_attention(h):
            with ctx.at("cross_attention"):
                computed = cache.cross(ctx, spec) if memory is None else None  # by the encoder model
                out = ATTENTION.builder(cross)(ctx, cross, spec, Site(h, memory, memory_mask, False, state=state,
                                                                     cross_kv=computed))
                return at_real_queries(ctx, cross, out, mask, cache)

        x = residual(ctx, x, block, "cross_attention", cross_attention)
    if not block.ffn.enabled:
        return x
    return residual(ctx, x, block, "ffn", lambda h: build_ffn(ctx, h, block.ffn, spec))
