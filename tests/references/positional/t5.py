"""Positional scheme `t5` (Raffel et al. 2020): a learned bias per head and bucket of j - i, one table
per stack. Buckets as mesh-tensorflow's _relative_position_bucket: encoders give half the buckets to
keys after the query; small |n| < num_buckets/4 (or /2 causal) get their own bucket, larger ones
log-spaced buckets up to max_distance, then the last one."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


def t5_bucket(n, bidirectional: bool, num_buckets: int, max_distance: int):
    """The bucket of n = key - query."""
    n = np.asarray(n)
    out = np.zeros(n.shape, dtype=np.int64)
    if bidirectional:
        num_buckets //= 2
        out += (n > 0) * num_buckets
        n = np.abs(n)
    else:
        n = np.maximum(-n, 0)
    max_exact = num_buckets // 2
    with np.errstate(divide="ignore"):
        large = max_exact + np.floor(np.log(np.maximum(n, 1) / max_exact) / math.log(max_distance / max_exact)
                                     * (num_buckets - max_exact)).astype(np.int64)
    return out + np.where(n < max_exact, n, np.minimum(large, num_buckets - 1))


@POSITIONS.register("t5")
class T5(Scheme):
    def attend(self, ref, options, logits, site):
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        bucket = t5_bucket(j - i, not site.causal, options.num_buckets, options.max_distance)
        logits.bias = logits.bias + ref.w[f"{site.stack}.relative_attention_bias.weight"][bucket].transpose(2, 0, 1)
