"""Positional scheme `local_rnn`: the R-Transformer's LocalRNN (Wang et al. 2019), x + LocalRNN(LN(x)):
each position's state is a recurrent cell run over the window of M tokens ending at it (zeros
before the first token)."""
from __future__ import annotations

import numpy as np

from ..formulas import LAYER_NORM
from ..recurrence import cell_weights, recurrence
from ..registry import POSITIONS
from .scheme import Scheme


@POSITIONS.register("local_rnn")
class LocalRnn(Scheme):
    def embed(self, ref, options, x, scope, mask=None):
        name, window = f"{scope}.local_rnn", options.window
        normed = ref.norm(x, LAYER_NORM, f"{name}.norm")
        padded = np.concatenate([np.zeros((x.shape[0], window - 1, x.shape[2])), normed], axis=1)
        w = cell_weights(ref.w, name)
        nonlinearity = getattr(options, "nonlinearity", "tanh")
        return x + np.stack([recurrence(padded[:, t:t + window], None, options.cell, nonlinearity, w)[:, -1]
                             for t in range(x.shape[1])], axis=1)
