"""Attention kind `recurrent`: an RNN, LSTM or GRU layer as the block's sequence mixer, with
PyTorch's equations and weight layout (tfcompiler.ir.ops.recurrent), lowered to ONNX RNN / LSTM / GRU.
Bidirectional layers (encoder stacks only) run a backward direction too and concatenate both; each direction
has width/directions hidden units, so the layer keeps the model width. Padded positions (right
padding) are skipped, as PyTorch's packed sequences. A plain stacked RNN is blocks of this kind
with `placement: none` and `ffn: {enabled: false}`; inside ordinary blocks it mixes the sequence
with residuals, norms and an FFN around it. With `state` (decoders) the layer's state is carried
between calls: inputs `past_states.K.h` (and `.c` for an LSTM), outputs `present_states.K.h` (`.c`),
shaped (1, batch, width), K counting the stateful layers from 0 — so a decoder can run a sequence in
pieces, or token by token (tfc_runtime.Segments carries them); the first call feeds zeros.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.ops.recurrent import GATES
from ...ir.types import BATCH
from ...spec.kinds import ATTENTION
from ...spec.schema import option


@dataclass(frozen=True, kw_only=True)
class RecurrentOptions:
    """An RNN, LSTM or GRU layer (PyTorch's semantics)."""

    self_only: ClassVar[bool] = True  # attends its own sequence only: no cross-attention

    cell: str = option("lstm", doc="rnn, lstm or gru.", choices=tuple(GATES))
    bidirectional: bool = option(False, doc="A backward direction too (encoders); outputs concatenated.")
    nonlinearity: str = option("tanh", doc="The rnn cell's activation.", choices=("tanh", "relu"))
    state: bool = option(False, doc="Carry the layer's state between calls as inputs past_states.K.h (.c) "
                         "and outputs present_states.K.h (.c) (decoders).")

    def problems(self, spec):
        if self.state and spec.topology != "decoder":
            yield f"a carried state runs a decoder in pieces: it needs topology 'decoder', got '{spec.topology}'"
        directions = 2 if self.bidirectional else 1
        if spec.model.width % directions:
            yield f"a bidirectional layer splits the width in two: width {spec.model.width} is odd"


def build_recurrent(ctx, options: RecurrentOptions, spec, site):
    directions = 2 if options.bidirectional else 1
    hidden, rows = spec.model.width // directions, GATES[options.cell] * (spec.model.width // directions)
    weights = [ctx.param("weight_ih", (directions, rows, spec.model.width), "matrix"),
               ctx.param("weight_hh", (directions, rows, hidden), "matrix"),
               ctx.param("bias_ih", (directions, rows), "zeros"), ctx.param("bias_hh", (directions, rows), "zeros")]
    mask = [site.mask] if site.mask is not None else []
    states = []
    if options.state:
        layer = site.state["stateful_layers"] = site.state.get("stateful_layers", -1) + 1
        parts = ("h", "c") if options.cell == "lstm" else ("h",)
        states = [ctx.input(f"past_states.{layer}.{part}", "float32", (directions, BATCH, hidden),
                            role="recurrent_state") for part in parts]
    outputs = ctx.graph.add("recurrent", [site.x, *weights, *mask, *states],
                            dict(cell=options.cell, nonlinearity=options.nonlinearity, masked=bool(mask),
                                 stateful=options.state), origin=ctx.origin, label=options.cell.upper())
    for part, value in zip(("h", "c"), outputs[1:]):
        ctx.graph.outputs[f"present_states.{layer}.{part}"] = value
    return outputs[0]


ATTENTION.register("recurrent", RecurrentOptions, build_recurrent)
