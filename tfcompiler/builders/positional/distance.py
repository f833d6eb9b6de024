"""Relative distances turned into table indices, for the schemes that learn one vector or bias per
distance bucket (Shaw, T5, Music Transformer, DeBERTa).

A scheme gives the bucket of every distance n = j - i as a NumPy function; the compiler evaluates
it at compile time over n in [-reach, reach] (beyond `reach` every scheme's bucket is constant), and
the graph only clips n and gathers from that constant table. So the bucketing (logs, ceilings,
truncations) happens once, exactly as the scheme's reference code rounds it, and the ONNX graph is
integer-only.
"""
from __future__ import annotations

import numpy as np


def bucket_index(ctx, parts, bucket_of, reach: int, transpose: bool = False):
    """int64 (S, T) = bucket_of(clip(n, -reach, reach)), or (T, S) with ``transpose``."""
    table = np.asarray(bucket_of(np.arange(-reach, reach + 1)), np.int64)
    n = ctx.op("relative_distance", parts.query, parts.key)
    shifted = ctx.op("add", ctx.op("clip", n, low=-reach, high=reach), ctx.constant(reach, "int64"))
    if transpose:
        shifted = ctx.op("transpose", shifted, perm=(1, 0))
    return ctx.op("gather", ctx.constant(table, "int64"), shifted, label="DistanceBucket")


def heads_first(ctx, x, heads: int, head_width: int):
    """(R, heads*Dh) rows of a projected table -> (R, heads, Dh)."""
    return ctx.op("reshape", x, shape=(0, heads, head_width))
