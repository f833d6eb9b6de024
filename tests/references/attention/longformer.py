"""Attention kind `longformer` (Beltagy et al. 2020): the dilated sliding window plus global tokens —
the leading `global_tokens` positions see and are seen by every position; or, with `global_input`,
the positions `global_attention_mask` marks, which attend every key through their own global
projections Q_g, K_g, V_g while every query sees its window and the global keys."""
from __future__ import annotations

import numpy as np

from ..formulas import NEG, attention, relative_positions
from ..registry import ATTENTION
from .multi_head import MultiHead
from .sliding_window import window


@ATTENTION.register("longformer")
class Longformer(MultiHead):
    def allowed(self, ref, options, s, t, site):
        i, j = relative_positions(s, t)
        return window(options, s, t) | (i < options.global_tokens) | (j < options.global_tokens)

    def __call__(self, ref, x, memory, site):
        if not site.options.global_input:
            return super().__call__(ref, x, memory, site)
        m, s = ref.spec.model, x.shape[1]
        chosen = ref.feeds["global_attention_mask"] != 0

        def heads(suffix):
            return ref.heads(x, f"{site.name}.{suffix}")

        allowed = window(site.options, s, s)[None] | chosen[:, None, :]
        local, _ = attention(heads("query"), heads("key"), heads("value"), m.dh ** -0.5, site.key_bias,
                             head_bias=np.where(allowed, 0.0, NEG)[:, None])
        glob, _ = attention(heads("query_global"), heads("key_global"), heads("value_global"), m.dh ** -0.5,
                            site.key_bias)
        return ref.merge_heads(np.where(chosen[:, None, :, None], glob, local), f"{site.name}.output")
