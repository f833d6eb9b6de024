"""Positional scheme `deberta`: DeBERTa's disentangled attention (He et al. 2021),
(q·k + q·K^r[δ] + k·Q^r[δ]) / √(3d) with the terms the spec names (c2p, p2c), relative embeddings
shared by the stack (LayerNorm'd optionally) projected by the layer's query and key projections,
and DeBERTa-v2's log buckets: |d| <= buckets/2 kept, larger ones
sign(d)·(mid + ceil(log(|d|/mid) / log((max-1)/mid) · (mid-1)))."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import Norm, relative_positions
from ..registry import POSITIONS
from .scheme import Scheme


def deberta_bucket(d, buckets: int, max_position: int):
    """The bucket of d = query - key (make_log_bucket_position)."""
    d = np.asarray(d)
    mid = buckets // 2
    magnitude = np.abs(d)
    logs = mid + np.ceil(np.log(np.maximum(magnitude, 1) / mid) / math.log((max_position - 1) / mid) * (mid - 1))
    return np.where(magnitude <= mid, d, np.sign(d) * logs).astype(np.int64)


@POSITIONS.register("deberta")
class Deberta(Scheme):
    def attend(self, ref, options, logits, site):
        m, stack = ref.spec.model, site.stack
        i, j = relative_positions(logits.q.shape[2], logits.k.shape[2])
        span = options.position_buckets or (options.max_relative_positions or m.max_length)
        delta = i - j
        if options.position_buckets:
            delta = deberta_bucket(delta, options.position_buckets, options.max_relative_positions or m.max_length)
        index = np.clip(delta + span, 0, 2 * span - 1)
        table = ref.w[f"{stack}.relative_embeddings.weight"]
        if options.norm:
            table = ref.norm(table, Norm("layer_norm", options.norm_epsilon), f"{stack}.relative_embeddings.norm")
        logits.scale = logits.scale / math.sqrt(1 + len(options.terms))
        rel_q = ref.linear(table, f"{site.name}.query").reshape(2 * span, m.heads, -1)[index]  # (S, T, H, d)
        rel_k = ref.linear(table, f"{site.name}.key").reshape(2 * span, m.heads, -1)[index]
        if "c2p" in options.terms:
            logits.bias = logits.bias + logits.scale * np.einsum("bhid,ijhd->bhij", logits.q, rel_k)
        if "p2c" in options.terms:
            logits.bias = logits.bias + logits.scale * np.einsum("bhjd,ijhd->bhij", logits.k, rel_q)
