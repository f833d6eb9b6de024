"""Positional scheme `funnel`: the Funnel Transformer's relative attention (Dai et al. 2020):
Transformer-XL's two terms over the distances in tokens between the (possibly pooled) query and key
positions, plus the segment term (q_i + s)·E_{same(i, j)} (type 2, [CLS], shares every segment); with
the stack's separate_cls no position term for [CLS] rows and columns. The positions and token types
of the queries and keys come from the stack (``state["funnel"]``, tests/references/resample.py)."""
from __future__ import annotations

import numpy as np

from ..registry import POSITIONS
from .scheme import Scheme
from .transformer_xl import relative_term


@POSITIONS.register("funnel")
class Funnel(Scheme):
    level_positions = True

    def attend(self, ref, options, logits, site):
        name, funnel = site.name, site.state["funnel"]
        (pq, tq), (pk, tk) = funnel["queries"], funnel["keys"]
        term = relative_term(ref, name, logits.q, (pq[:, None] - pk[None, :]).astype(float), options.base)
        if options.segments:
            same = (tq[:, :, None] == tk[:, None, :]) | (tq[:, :, None] == 2) | (tk[:, None, :] == 2)
            e = np.einsum("bhid,khd->bhik", logits.q + ref.w[f"{name}.relative.segment_bias"],
                          ref.w[f"{name}.relative.segment_embedding"])
            term = term + np.where(same[:, None], e[..., 1:2], e[..., 0:1])
        if funnel["separate_cls"]:
            term[:, :, 0, :] = 0
            term[:, :, :, 0] = 0
        logits.bias = logits.bias + logits.scale * term
        logits.q = logits.q + ref.w[f"{name}.relative.content_bias"]
