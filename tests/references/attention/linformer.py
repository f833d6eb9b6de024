"""Attention kind `linformer` (Wang et al. 2020): softmax(Q (E K)ᵀ/√d) F V with E, F cut to the first
T columns and padded keys zeroed; E and F per layer, one shared projection for both (key_value), or
one for the whole stack (layerwise)."""
from __future__ import annotations

import math

from ..formulas import repeat_kv, softmax
from ..registry import ATTENTION
from .multi_head import MultiHead


def real_keys(key_bias):
    """1 for a real key, 0 for padding, broadcastable to (B, H, T, 1)."""
    if key_bias is None:
        return 1.0
    return (key_bias == 0).astype(float)[:, None, :, None]


@ATTENTION.register("linformer")
class Linformer(MultiHead):
    def attend(self, ref, q, k, v, site):
        k, v = repeat_kv(q, k, v)
        keep, t, options = real_keys(site.key_bias), k.shape[2], site.options
        prefix = {"layerwise": f"{site.stack}.linformer.projection", "key_value": f"{site.name}.projection"}
        e = ref.w[prefix.get(options.share, f"{site.name}.key_projection")][:, :t]
        f = ref.w[prefix.get(options.share, f"{site.name}.value_projection")][:, :t]
        return softmax(q @ (e @ (k * keep)).swapaxes(-1, -2) / math.sqrt(q.shape[-1])) @ (f @ (v * keep))
