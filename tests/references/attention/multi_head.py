"""Attention kind `multi_head` (Vaswani et al. 2017) and the softmax attention every softmax kind
builds on: the Q, K, V projections (H query heads, Hkv key/value heads), per-head query/key norms,
the positional scheme's terms, restricted / multi-scale spans (head h sees |i - j| <= w_h), adaptive
spans (Sukhbaatar et al. 2019), the Gaussian prior (-w_h (i - j)²), a sparse kind's mask
(``allowed``), logit soft-capping, talking heads and residual scores (RealFormer)."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, Norm, attention, relative_positions
from ..registry import ATTENTION, POSITIONS, Logits


class Plain:
    """Options of a plain softmax attention with nothing configured (pooling and relay attentions)."""

    KIND = "multi_head"
    scale = None


PLAIN = Plain()


@ATTENTION.register("multi_head")
class MultiHead:
    """The attention sublayer: project, attend, project the heads back; subclasses replace a part."""

    def __call__(self, ref, x, memory, site):
        q, k, v = self.project(ref, x, memory, site)
        options = site.options
        if getattr(options, "qk_norm", None):  # per head, over the head width, before positions
            norm = Norm(options.qk_norm, options.qk_norm_epsilon)
            q, k = ref.norm(q, norm, f"{site.name}.query_norm"), ref.norm(k, norm, f"{site.name}.key_norm")
        return ref.merge_heads(self.attend(ref, q, k, v, site), f"{site.name}.output")

    def project(self, ref, x, memory, site):
        """(B, H, S, d) queries of x, (B, Hkv, T, d) keys and values of memory."""
        return (ref.heads(x, f"{site.name}.query"), ref.heads(memory, f"{site.name}.key"),
                ref.heads(memory, f"{site.name}.value"))

    def allowed(self, ref, options, s: int, t: int, site):
        """bool (S, T): the keys a query of a sparse kind sees in self-attention, or int: how many times
        it counts each (0: not seen); None: all."""
        return None

    def attend(self, ref, q, k, v, site):
        """Heads (B,H,S,d) attend keys/values (B,Hkv,T,d), queries at the end of the keys."""
        m, options = ref.spec.model, site.options
        s, t = q.shape[2], k.shape[2]
        scale = getattr(options, "scale", None)
        logits = Logits(q, k, scale if scale is not None else 1 / math.sqrt(q.shape[-1]), np.zeros((1, m.heads, s, t)))
        if site.positional is not None:
            POSITIONS[site.positional].attend(ref, site.positional, logits, site)
        if site.positional is not None and site.state:  # the input's terms over pairs (a graph's adjacency, edges)
            for term in site.state.get("pair_terms", ()):
                term(ref, logits, site)
        i, j = relative_positions(s, t)
        if getattr(options, "span", None) is not None:  # head h sees |i - j| <= w_h
            spans = np.array(options.span * m.heads if len(options.span) == 1 else options.span)
            logits.bias = logits.bias + np.where(np.abs(i - j)[None] > spans[:, None, None], NEG, 0.0)
        if getattr(options, "adaptive_span", None) is not None:  # Sukhbaatar et al. 2019
            z = options.adaptive_span.max_span * np.clip(ref.w[f"{site.name}.adaptive_span.fraction"].reshape(-1), 0, 1)
            ramp = options.adaptive_span.ramp
            soft = np.clip((ramp + z[:, None, None] - np.abs(i - j)[None]) / ramp, 0, 1)
            with np.errstate(divide="ignore"):
                logits.bias = logits.bias + np.where(soft > 0, np.log(soft), NEG)
        if getattr(options, "gaussian_prior", False):  # -w_h (i - j)², w_h >= 0
            width = np.abs(ref.w[f"{site.name}.gaussian_prior.weight"].reshape(-1))
            logits.bias = logits.bias - width[:, None, None] * ((i - j) ** 2)[None]
        allowed = self.allowed(ref, options, s, t, site) if site.positional is not None else None
        if allowed is not None:
            with np.errstate(divide="ignore"):  # a key counted k times adds log k
                logits.bias = logits.bias + np.where(allowed > 0, np.log(allowed.astype(np.float64)), NEG)
        talking = getattr(options, "talking_heads", "none")
        mixes = {when: ref.w[f"{site.name}.talking_heads.{when}"] if talking in (when, "both") else None
                 for when in ("pre", "post")}
        residual = getattr(options, "residual_scores", False) and site.positional is not None
        out, carried = attention(logits.q, logits.k, v, logits.scale, site.key_bias, site.causal, logits.bias,
                                 getattr(options, "softcap", None), site.state.get("scores") if residual else None,
                                 mixes["pre"], mixes["post"], logits.value_term)
        if residual:
            site.state["scores"] = carried
        return out
