"""Hourglass's attention resampling (Nawrot et al. 2021, `resample.attention`): the pooled and the
upsampled states are refined by attention within their window.

Shortening: window n of the (causally shifted) input holds k states; its pooled state p_n is the
query of one attention over them, then a feed-forward sublayer, p_n' = Block(p_n; keys = window n).
Upsampling: each of the k full-length states u of window n (upsampled plus the residual) is a query
over the one short state s_n it came from, u' = Block(u; keys = [s_n]). A window is the batch axis
of these attentions: (B, S', k, D) folded to (B·S', k, D), so no mask beyond the window's own is
needed and nothing leaks between windows (the causal shift already keeps a window in the past). A
window of padding only attends all of its states (the public implementation: uniform weights).

The block is the one the public implementation (lucidrains/hourglass-transformer-pytorch) runs:
its own weights, placed and normalised as the stack's blocks; plain multi-head attention without
positions, whose keys are not normalised (a pre-norm sublayer normalises its queries only).
"""
from __future__ import annotations

from .attention.multi_head import MultiHeadOptions, build_multi_head
from .attention.parts import Site
from .block import residual
from .ffn import build_ffn


def window_block(ctx, spec, block, queries, keys, mask):
    """queries (N, Q, D) attend keys (N, K, D) with their mask (N, K) or None, then the FFN sublayer."""
    def attention(h):
        with ctx.at("attention"):
            return build_multi_head(ctx, MultiHeadOptions(), spec, Site(h, keys, mask, False))

    x = residual(ctx, queries, block, "attention", attention)
    if not block.ffn.enabled:
        return x
    return residual(ctx, x, block, "ffn", lambda h: build_ffn(ctx, h, block.ffn, spec))


def shorten_by_attention(ctx, spec, block, pooled, hidden, mask, size: int):
    """pooled (B, S', D), each the query of its window of hidden (B, S, D) (key mask (B, S) or None)."""
    windows_BNkD = ctx.op("fold_windows", hidden, size=size)
    keys = ctx.op("merge_outer", windows_BNkD)  # (B·S', k, D)
    queries = ctx.op("merge_outer", ctx.op("unsqueeze", pooled, axes=(2,)))  # (B·S', 1, D)
    key_mask = None
    if mask is not None:  # zero-filled like the windows: the tail of a short last window is padding
        folded = ctx.op("fold_windows", ctx.op("unsqueeze", mask, axes=(2,)), size=size)  # (B, S', k, 1)
        key_mask = ctx.op("reshape", ctx.op("merge_outer", folded), shape=(0, size), label="WindowMask")
        # a window of padding attends all its states: a row with every key hidden is undefined (fused
        # kernels disagree), and a deeper level pools this state into a real window
        real_any = ctx.op("reduce_max", key_mask, axes=(1,), keepdims=True)
        none_real = ctx.op("sub", ctx.constant(1, dtype=ctx.type_of(key_mask).dtype), real_any)
        key_mask = ctx.op("add", key_mask, none_real, label="PaddingWindowSeesAll")
    out = window_block(ctx, spec, block, queries, keys, key_mask)  # (B·S', 1, D)
    return ctx.op("reshape", ctx.op("split_outer", out, windows_BNkD), shape=(0, 0, spec.model.width),
                  label="PooledByAttention")


def upsample_by_attention(ctx, spec, block, upsampled, short, factor: int):
    """upsampled (B, S, D): each state the query over the one state of short (B, S', D) its window came from."""
    windows_BNkD = ctx.op("fold_windows", upsampled, size=factor)
    queries = ctx.op("merge_outer", windows_BNkD)  # (B·S', k, D)
    keys = ctx.op("merge_outer", ctx.op("unsqueeze", short, axes=(2,)))  # (B·S', 1, D)
    out = window_block(ctx, spec, block, queries, keys, None)
    return ctx.op("unfold_windows", ctx.op("split_outer", out, windows_BNkD), upsampled, label="UpsampledByAttention")
