"""Attention kind `induced`: the Set Transformer's induced set attention (Lee et al. 2019),
H = MHA(I, X, X) with m learned inducing points I, then out = MHA(X, H, H); both plain multi-head
attentions. With `latents_output` the N-th induced layer of a stack also outputs H as `induced_latents.N`."""
from __future__ import annotations

import numpy as np

from ..registry import ATTENTION
from .multi_head import PLAIN, MultiHead


@ATTENTION.register("induced")
class Induced(MultiHead):
    def __call__(self, ref, x, memory, site):
        points = ref.w[f"{site.name}.inducing_points"]
        points = np.broadcast_to(points, (x.shape[0],) + points.shape[1:])
        induced = ref.mha(points, memory, site.key_bias, False, PLAIN, f"{site.name}.induce")
        if site.options.latents_output:
            index = site.state["induced_layers"] = site.state.get("induced_layers", -1) + 1
            ref.present[f"induced_latents.{index}"] = induced
        return ref.mha(x, induced, None, False, PLAIN, f"{site.name}.broadcast")
