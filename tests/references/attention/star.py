"""Attention kind `star`: the Star-Transformer (Guo et al. 2019), one cycle per layer, per position:
satellite i attends C_i = [h_{i-1}; h_i; h_{i+1}; e_i; s] (neighbours only where they exist and are
real); then the relay s <- LN(ReLU(MultiAtt(s, [s; H]))) over the satellites' new attention outputs
H. e is the first layer's input, s starts as the mean of the real e_i. update: paper also passes the
satellites through LayerNorm(ReLU(·))."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import LAYER_NORM
from ..registry import ATTENTION
from .multi_head import PLAIN, MultiHead


@ATTENTION.register("star")
class Star(MultiHead):
    def __call__(self, ref, x, memory, site):
        m, name, state, key_bias = ref.spec.model, site.name, site.state, site.key_bias
        b, s, _ = x.shape
        real = np.ones((b, s), bool) if key_bias is None else key_bias == 0
        e = state.setdefault("star_embeddings", x)
        if "star_relay" not in state:
            state["star_relay"] = np.stack([e[bi, real[bi]].mean(0) for bi in range(b)])[:, None]
        relay = state["star_relay"]

        def heads(y, part):
            return ref.linear(y, f"{name}.{part}").reshape(b, y.shape[1], m.heads, m.dh)

        q, k, v = heads(x, "query"), heads(x, "key"), heads(x, "value")
        ke, ve, ks, vs = heads(e, "key"), heads(e, "value"), heads(relay, "key"), heads(relay, "value")
        out = np.zeros((b, s, m.heads, m.dh))
        for bi in range(b):
            for i in range(s):
                ring = [j for j in (i - 1, i, i + 1) if 0 <= j < s and (j == i or real[bi, j])]
                keys = [k[bi, j] for j in ring] + [ke[bi, i], ks[bi, 0]]
                values = [v[bi, j] for j in ring] + [ve[bi, i], vs[bi, 0]]
                for hi in range(m.heads):
                    scores = np.array([q[bi, i, hi] @ key[hi] for key in keys]) / math.sqrt(m.dh)
                    weights = np.exp(scores - scores.max())
                    out[bi, i, hi] = weights @ np.array([value[hi] for value in values]) / weights.sum()
        satellites = ref.linear(out.reshape(b, s, -1), f"{name}.output")
        if site.options.update == "paper":  # h = LayerNorm(ReLU(MultiAtt(·)))
            satellites = ref.norm(np.maximum(satellites, 0), LAYER_NORM, f"{name}.satellite_norm")
        relay_bias = None if key_bias is None else np.concatenate([np.zeros((b, 1)), key_bias], axis=1)
        updated = ref.mha(relay, np.concatenate([relay, satellites], axis=1), relay_bias, False, PLAIN,
                          f"{name}.relay")
        state["star_relay"] = ref.norm(np.maximum(updated, 0), LAYER_NORM, f"{name}.relay_norm")
        return satellites
