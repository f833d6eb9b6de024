"""Attention kind `recurrent`: an RNN, LSTM or GRU layer as the block's sequence mixer, with
PyTorch's equations and weight layout (tfcompiler.ir.ops.recurrent), lowered to ONNX RNN / LSTM / GRU.
Bidirectional layers (encoder stacks only) run a backward direction too and concatenate both; each direction
has width/directions hidden units, so the layer keeps the model width. Padded positions (right
padding) are skipped, as PyTorch's packed sequences. A plain stacked RNN is blocks of this kind
with `placement: none` and `ffn: {enabled: false}`; inside ordinary blocks it mixes the sequence
with residuals, norms and an FFN around it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.ops.recurrent import GATES
from ...spec.kinds import ATTENTION
from ...spec.schema import option


@dataclass(frozen=True, kw_only=True)
class RecurrentOptions:
    """An RNN, LSTM or GRU layer (PyTorch's semantics)."""

    cell: str = option("lstm", doc="rnn, lstm or gru.", choices=tuple(GATES))
    bidirectional: bool = option(False, doc="A backward direction too (encoders); outputs concatenated.")
    nonlinearity: str = option("tanh", doc="The rnn cell's activation.", choices=("tanh", "relu"))

    def problems(self, spec):
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
    return ctx.op("recurrent", site.x, *weights, *mask, cell=options.cell, nonlinearity=options.nonlinearity,
                  label=options.cell.upper())


ATTENTION.register("recurrent", RecurrentOptions, build_recurrent)
