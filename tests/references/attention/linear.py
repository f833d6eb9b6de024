"""Attention kind `linear` (Katharopoulos et al. 2020, "Transformers are RNNs"): φ(x) = elu(x) + 1."""
from __future__ import annotations

import numpy as np

from ..registry import ATTENTION
from .linearised import Linearised


@ATTENTION.register("linear")
class Linear(Linearised):
    def features(self, ref, options, layer):
        return (lambda x: np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))), options.eps
