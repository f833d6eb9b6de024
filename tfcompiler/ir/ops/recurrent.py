"""Recurrent layers (RNN, LSTM, GRU) as one canonical op, with PyTorch's semantics and weight
layout (the lowering reorders gates for ONNX).

recurrent(x (B,S,D), weight_ih (dirs, G·H, D), weight_hh (dirs, G·H, H), bias_ih, bias_hh
(dirs, G·H), mask? (B,S), h0? (dirs,B,H), c0? (dirs,B,H)) attrs cell (rnn | lstm | gru),
nonlinearity (tanh | relu, rnn only), masked, stateful
-> (B, S, dirs·H), the forward direction's states then the backward one's; with `stateful` also
the final states h_n (dirs,B,H) (and c_n for an LSTM), starting from h0 (and c0): each sequence's
state after its last real token (the backward direction's after the first).

  rnn:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)
  lstm: i, f, g, o = σ, σ, tanh, σ of W_ih x_t + b_ih + W_hh h_{t-1} + b_hh (rows in that order);
        c_t = f c_{t-1} + i g, h_t = o tanh(c_t)
  gru:  r, z = σ(W_ir x + b_ir + W_hr h + b_hr), σ(...); n = tanh(W_in x + b_in + r (W_hn h + b_hn));
        h_t = (1 - z) n + z h_{t-1}   (rows r, z, n; the reset applied after W_hn, as PyTorch)
States start at zero. With a mask, each sequence runs over its real tokens only, wherever its
padding is (a padded step leaves the state as it is, so a left-padded row starts from h0 at its first
real token), the backward direction from its last real token, and padded positions output zeros
(PyTorch's packed sequences, for right padding). A row without a real token keeps h0 (and c0).

local_recurrent(x (B,S,D), weight_ih, weight_hh, bias_ih, bias_hh (one direction)) attrs cell,
nonlinearity, window -> (B,S,H): R-Transformer's local RNN (Wang et al. 2019): position t's output
is the last state of the cell run over x_{t-window+1} .. x_t, zeros before the sequence start.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .registry import OpTypeError, register

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _step(cell, nonlinearity, x, h, c, w_ih, w_hh, b_ih, b_hh):
    gi, gh = x @ w_ih.T + b_ih, h @ w_hh.T + b_hh
    if cell == "rnn":
        return (np.tanh(gi + gh) if nonlinearity == "tanh" else np.maximum(gi + gh, 0)), c
    if cell == "lstm":
        i, f, g, o = np.split(gi + gh, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        return _sigmoid(o) * np.tanh(c), c
    (ir, iz, inn), (hr, hz, hn) = np.split(gi, 3, axis=-1), np.split(gh, 3, axis=-1)
    r, z = _sigmoid(ir + hr), _sigmoid(iz + hz)
    n = np.tanh(inn + r * hn)
    return (1 - z) * n + z * h, c


def recurrent(x, w_ih, w_hh, b_ih, b_hh, mask, cell: str, nonlinearity: str = "tanh", h0=None, c0=None):
    """Returns (outputs, h_n, c_n)."""
    b, s, _ = x.shape
    dirs, hidden = w_ih.shape[0], w_hh.shape[2]
    real = [np.arange(s) if mask is None else np.flatnonzero(mask[n] != 0) for n in range(b)]
    out = np.zeros((b, s, dirs, hidden))
    h_n, c_n = np.zeros((dirs, b, hidden)), np.zeros((dirs, b, hidden))
    x = x.astype(np.float64)
    for d in range(dirs):
        for n in range(b):
            h = np.zeros(hidden) if h0 is None else h0[d, n].astype(np.float64)
            c = np.zeros(hidden) if c0 is None else c0[d, n].astype(np.float64)
            for t in real[n] if d == 0 else real[n][::-1]:
                h, c = _step(cell, nonlinearity, x[n, t], h, c, w_ih[d], w_hh[d], b_ih[d], b_hh[d])
                out[n, t, d] = h
            h_n[d, n], c_n[d, n] = h, c
    return out.reshape(b, s, dirs * hidden).astype(np.float32), h_n.astype(np.float32), c_n.astype(np.float32)


def local_recurrent(x, w_ih, w_hh, b_ih, b_hh, cell: str, nonlinearity: str, window: int):
    b, s, d = x.shape
    padded = np.pad(x, ((0, 0), (window - 1, 0), (0, 0)))
    windows = np.stack([padded[:, t:t + window] for t in range(s)], axis=1).reshape(b * s, window, d)
    last = recurrent(windows, w_ih, w_hh, b_ih, b_hh, None, cell, nonlinearity)[0][:, -1]
    return last.reshape(b, s, -1)


def _local_infer(attrs, types):
    x, w_ih, w_hh = types[:3]
    if w_ih.shape[0] != 1:
        raise OpTypeError(f"a local RNN runs one direction, got weights {w_ih}")
    return [TensorType("float32", x.shape[:2] + (w_hh.shape[2],))]


def state_count(attrs) -> int:
    """How many state tensors a stateful layer carries: h, and c for an LSTM."""
    return (2 if attrs["cell"] == "lstm" else 1) if attrs.get("stateful") else 0


def _infer(attrs, types):
    x, w_ih, w_hh, b_ih, b_hh = types[:5]
    gates = GATES[attrs["cell"]]
    dirs, rows, width = w_ih.shape
    hidden = w_hh.shape[2]
    if rows != gates * hidden or w_hh.shape[:2] != (dirs, rows) or width != x.shape[2]:
        raise OpTypeError(f"{attrs['cell']} weights do not fit: x {x}, weight_ih {w_ih}, weight_hh {w_hh}")
    if len(types) != 5 + bool(attrs.get("masked")) + state_count(attrs):
        raise OpTypeError(f"recurrent takes x, 4 weights, a mask if masked and its states if stateful: {len(types)}")
    state = TensorType("float32", (dirs, x.shape[0], hidden))
    return [TensorType("float32", x.shape[:2] + (dirs * hidden,))] + [state] * state_count(attrs)


def _evaluate(attrs, x, w_ih, w_hh, b_ih, b_hh, *rest):
    mask = rest[0] if attrs.get("masked") else None
    states = rest[1:] if attrs.get("masked") else rest
    out, h_n, c_n = recurrent(x, w_ih, w_hh, b_ih, b_hh, mask, attrs["cell"], attrs.get("nonlinearity", "tanh"),
                              *states)
    return [out, h_n, c_n][:1 + state_count(attrs)]


register("recurrent", (5, 8), _infer, _evaluate)
register("local_recurrent", (5, 5), _local_infer,
         lambda attrs, x, w_ih, w_hh, b_ih, b_hh: [local_recurrent(
             x, w_ih, w_hh, b_ih, b_hh, attrs["cell"], attrs.get("nonlinearity", "tanh"), attrs["window"])])
