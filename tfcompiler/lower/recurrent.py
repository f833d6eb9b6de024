"""ONNX lowering of the recurrent op to the standard RNN / LSTM / GRU ops (sequence-major, the
layout onnxruntime's CPU kernels take, with a Transpose either side):
PyTorch's gate rows reordered for ONNX (LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h) by a Gather on
the weights (constant, so onnxruntime folds it once), the two biases concatenated, the GRU's reset
applied after the recurrent product (`linear_before_reset=1`, PyTorch's). With a padding mask each row's
real tokens are first moved to its front, in order (ScatterElements to their rank among the real ones,
the pads after them), the cell runs over them (`sequence_lens`), and the outputs go back to the tokens'
places (GatherElements): so padding can be anywhere (a left-padded row starts from the initial state
at its first real token), and a padded position outputs zeros. A row without a real token keeps its
initial state (ONNX's cells would return zeros)."""
from __future__ import annotations

import numpy as np

from .common import length_of, reduce
from .registry import lowers

ONNX_ORDER = {"rnn": [0], "lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}  # PyTorch gate block per ONNX gate


def run_cell(e, attrs, sequence_major: str, weights: list, lengths: str, directions: int, hidden: int,
             label: str, initial: tuple = ()) -> list[str]:
    """One ONNX RNN / LSTM / GRU node over (S, B, D), from the `initial` states (h, and c for an
    LSTM) when given; returns [Y (S, dirs, B, H), Y_h (dirs, B, H)] (+ Y_c for an LSTM)."""
    cell = attrs["cell"]
    w_ih, w_hh, b_ih, b_hh = weights
    order = e.const(np.concatenate([np.arange(g * hidden, (g + 1) * hidden) for g in ONNX_ORDER[cell]]))

    def reordered(w):
        return e.node1("Gather", w, order, axis=1)

    bias = e.node1("Concat", reordered(b_ih), reordered(b_hh), axis=1)
    options = dict(hidden_size=hidden, direction="bidirectional" if directions == 2 else "forward")
    if cell == "rnn":
        options["activations"] = ["Tanh" if attrs.get("nonlinearity", "tanh") == "tanh" else "Relu"] * directions
    if cell == "gru":
        options["linear_before_reset"] = 1
    return e.node(cell.upper(), [sequence_major, reordered(w_ih), reordered(w_hh), bias, lengths, *initial],
                  n_outputs=3 if cell == "lstm" else 2, label=label or cell.upper(), **options)


def real_first(e, mask: str) -> tuple[str, str]:
    """mask (B, S) -> where each position goes when a row's real tokens move to its front in order
    (their rank among the real ones; the pads' after them), (B, S) int64, and the real counts (B,)."""
    is_real = e.node1("Not", e.node1("Equal", mask, e.const(0)))
    real = e.node1("Cast", is_real, to=7)  # int64 0/1
    count = reduce(e, "ReduceSum", real, [1])  # (B, 1)
    rank_real = e.node1("Sub", e.node1("CumSum", real, e.const(1)), e.const(1))
    rank_pad = e.node1("Add", count, e.node1("Sub", e.node1("CumSum", e.node1("Sub", e.const(1), real), e.const(1)),
                                             e.const(1)))
    places = e.node1("Where", is_real, rank_real, rank_pad)
    return places, e.node1("Squeeze", count, e.const([1]))


def along_rows(e, places: str, like: str) -> str:
    """places (B, S) as indices for (B, S, W) tensors like `like`."""
    return e.node1("Expand", e.node1("Unsqueeze", places, e.const([2])), e.node1("Shape", like))


@lowers("recurrent")
def recurrent(e, attrs, inputs, types, label):
    x, *weights = inputs[:5]
    masked = bool(attrs.get("masked"))
    mask, initial = inputs[5:5 + masked], tuple(inputs[5 + masked:])
    directions, _, hidden = types[2].shape
    lengths = ""
    if mask:
        places, count = real_first(e, mask[0])
        x = e.node1("ScatterElements", x, along_rows(e, places, x), x, axis=1, label="RealTokensFirst")
        lengths = e.node1("Cast", count, to=6)  # int32
    states, *finals = run_cell(e, attrs, e.node1("Transpose", x, perm=[1, 0, 2]), weights, lengths, directions,
                               hidden, label, initial)  # (S, dirs, B, H)
    batch_major = e.node1("Transpose", states, perm=[2, 0, 1, 3])
    out = e.node1("Reshape", batch_major, e.const([0, 0, directions * hidden]), label="MergeDirections")
    if mask:
        out = e.node1("GatherElements", out, along_rows(e, places, out), axis=1, label="BackInPlace")
        if initial:  # (1, B, 1): a row with no real token keeps its state
            empty = e.node1("Unsqueeze", e.node1("Equal", count, e.const(0)), e.const([0, 2]))
            finals = [e.node1("Where", empty, start, final) for start, final in zip(initial, finals)]
    return [out] + (finals if initial else [])


@lowers("local_recurrent")
def local_recurrent(e, attrs, inputs, types, label):
    """Windows of the last `window` positions (Pad at the front, one Slice per offset, Concat), one
    cell run over all of them as a batch of B·S short sequences, its final state per window."""
    x, *weights = inputs
    window, width, hidden = attrs["window"], types[0].shape[2], types[2].shape[2]
    s = e.node1("Reshape", length_of(e, x, 1), e.const([1]))
    padded = e.node1("Pad", x, e.const([0, window - 1, 0, 0, 0, 0]))
    steps = [e.node1("Unsqueeze", e.node1("Slice", padded, e.const([offset]), e.node1("Add", s, e.const([offset])),
                                          e.const([1])), e.const([0]))
             for offset in range(window)]  # step k of every window: (1, B, S, D)
    sequence_major = e.node1("Reshape", e.node1("Concat", *steps, axis=0), e.const([window, -1, width]))
    last = run_cell(e, attrs, sequence_major, weights, "", 1, hidden, label)[1]  # (1, B·S, H)
    shape = e.node1("Concat", e.node1("Shape", x, start=0, end=2), e.const([hidden]), axis=0)
    return [e.node1("Reshape", last, shape, label="LocalStates")]
