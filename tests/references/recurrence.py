"""The recurrent cells, shared by the `recurrent` attention kind and the `local_rnn` positional
scheme: Elman / Hochreiter & Schmidhuber / Cho et al., as torch.nn.RNN / LSTM / GRU write them."""
from __future__ import annotations

import numpy as np

from .formulas import sigmoid


def recurrence(x, key_bias, cell: str, nonlinearity: str, w, carry=None):
    """Gate rows i,f,g,o and r,z,n; the GRU's reset after W_hn h + b_hn: each sequence runs over its
    real tokens only, wherever its padding is, the backward direction from its last one; padded
    positions are zero. `w`: the stacked weight_ih, weight_hh, bias_ih, bias_hh (a leading axis per
    direction). `carry`:
    {"h": (dirs, B, H)[, "c"]} initial states ({} for zeros), replaced by the states after the last
    real tokens."""
    b, s, _ = x.shape
    directions, hidden = w["weight_hh"].shape[0], w["weight_hh"].shape[2]
    out, finals = np.zeros((b, s, directions, hidden)), {}
    for n in range(b):
        real = np.arange(s) if key_bias is None else np.flatnonzero(np.reshape(key_bias[n], -1) == 0)
        for d in range(directions):
            h = np.zeros(hidden) if not carry else carry["h"][d, n].astype(np.float64)
            c = np.zeros(hidden) if not carry or "c" not in carry else carry["c"][d, n].astype(np.float64)
            for t in (real if d == 0 else real[::-1]):
                a = w["weight_ih"][d] @ x[n, t] + w["bias_ih"][d]
                r = w["weight_hh"][d] @ h + w["bias_hh"][d]
                if cell == "rnn":
                    h = np.tanh(a + r) if nonlinearity == "tanh" else np.maximum(a + r, 0)
                elif cell == "lstm":
                    i, f, g, o = ((a + r)[:hidden], (a + r)[hidden:2 * hidden], (a + r)[2 * hidden:3 * hidden],
                                  (a + r)[3 * hidden:])
                    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
                    h = sigmoid(o) * np.tanh(c)
                else:
                    reset, update = (sigmoid(a[:hidden] + r[:hidden]),
                                     sigmoid(a[hidden:2 * hidden] + r[hidden:2 * hidden]))
                    candidate = np.tanh(a[2 * hidden:] + reset * r[2 * hidden:])
                    h = (1 - update) * candidate + update * h
                out[n, t, d] = h
            if carry is not None:
                finals.setdefault("h", np.zeros((directions, b, hidden)))[d, n] = h
                if cell == "lstm":
                    finals.setdefault("c", np.zeros((directions, b, hidden)))[d, n] = c
    if carry is not None:
        carry.update(finals)
    return out.reshape(b, s, directions * hidden)


def cell_weights(w, name):
    """The four weights of a recurrent layer at `name`."""
    return {k: w[f"{name}.{k}"] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
