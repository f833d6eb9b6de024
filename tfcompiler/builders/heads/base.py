"""What heads share: reading one vector per row out of the states (the first token, the mean of the real
tokens, the last real token)."""
from __future__ import annotations


def pool(ctx, hidden, pooling: str, mask):
    """(B, S, D) -> (B, D): the first token, the mean of the real tokens, or the last real one (the
    rightmost position the padding mask (B, S) marks), read through that mask."""
    if pooling == "first" or mask is None and pooling == "last":
        index = 0 if pooling == "first" else -1
        return ctx.op("gather", hidden, ctx.constant(index, dtype="int64"), axis=1,
                      label="FirstToken" if index == 0 else "LastToken")
    weights = ctx.op("cast", mask, dtype="float32")  # (B, S)
    if pooling == "last":  # one-hot at the rightmost marked position, whichever side the padding is on
        positions = ctx.op("positions", mask, axis=1)
        last = ctx.op("reduce_max", ctx.op("mul", positions, mask), axes=(1,), keepdims=True)
        # times the mask: a row with no marked position pools to zeros, not to its first token
        weights = ctx.op("mul", weights, ctx.op("cast", ctx.op("equal", positions, last), dtype="float32"))
    elif mask is None:
        return ctx.op("reduce_mean", hidden, axes=(1,), keepdims=False, label="MeanPool")
    total = ctx.op("matmul", ctx.op("unsqueeze", weights, axes=(1,)), hidden)  # (B, 1, D)
    count = ctx.op("unsqueeze", ctx.op("reduce_sum", weights, axes=(1,), keepdims=True), axes=(2,))
    count = ctx.op("clip", count, low=1.0)  # an empty row (a padded sentence) pools to zeros, not NaN
    width = ctx.type_of(hidden).shape[-1]
    return ctx.op("reshape", ctx.op("div", total, count), shape=(0, width), label=f"{pooling.title()}Pool")
