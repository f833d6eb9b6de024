"""Attention kind `recurrent`: an RNN, LSTM or GRU layer in the attention's place (torch.nn's
equations, tests/references/recurrence.py), over each sequence's real tokens. Its first state is
zeros; or, with `state`, the k-th stateful layer reads past_states.k and writes present_states.k;
or, with `start: encoder`, the matching encoder layer's last states, directions joined (Sutskever
et al. 2014)."""
from __future__ import annotations

import numpy as np

from ..recurrence import cell_weights, recurrence
from ..registry import ATTENTION
from .multi_head import MultiHead


@ATTENTION.register("recurrent")
class Recurrent(MultiHead):
    def __call__(self, ref, x, memory, site):
        options, state = site.options, site.state
        carry = None
        parts = ("h", "c") if options.cell == "lstm" else ("h",)
        index = state["recurrent_layers"] = state.get("recurrent_layers", -1) + 1
        if options.state:
            layer = state["stateful_layers"] = state.get("stateful_layers", -1) + 1
            carry = {part: ref.feeds[f"past_states.{layer}.{part}"] for part in parts}
        elif options.start == "encoder":
            carry = {part: np.concatenate(list(v), axis=-1)[None] for part, v in ref.handover[index].items()
                     if part in parts}
        elif site.stack == "encoder":
            carry = {}
        out = recurrence(x, site.key_bias, options.cell, getattr(options, "nonlinearity", "tanh"),
                         cell_weights(ref.w, site.name), carry)
        if options.state:
            ref.present.update({f"present_states.{layer}.{part}": v for part, v in carry.items()})
        elif site.stack == "encoder":
            ref.handover.append(carry)
        return out
