"""Positional scheme `local_rnn`: R-Transformer's local RNN (Wang et al. 2019), an implicit
position signal. Every position runs a short RNN / LSTM / GRU over the `window` positions ending at
it (zeros before the start) and adds its last state, through the pre-norm residual of the paper's
code: x + LocalRNN(LayerNorm(x)). As a block's `positional` it acts on that block's input, which
is where R-Transformer puts it (every layer: local RNN, then attention, then FFN). Causal by
construction. Lowered to one ONNX RNN node over all windows as a batch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...ir.ops.recurrent import GATES
from ...language.kinds import POSITIONS, PositionalKind
from ...language.model import Norm
from ...language.schema import option
from ...language.shrink_rules import cap
from ..norm import build_norm
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class LocalRnnOptions(PositionalKind):
    """A short RNN over the last `window` positions, added to the tokens."""

    PAPER = "R-Transformer (Wang et al. 2019)"
    COMPUTES = ("x + LocalRNN(LN(x)): each token plus the last state of a short RNN over the `window` positions "
                "ending at it")
    LOWERING = "one ONNX `RNN` / `LSTM` / `GRU` node, all windows as one batch"
    no_cache_because: ClassVar[str] = "its recurrence reads each window of earlier embeddings anew at every step"

    window: int = option(doc="M: positions each local RNN reads, the current one included.",
                         minimum=1, shrink=cap(2), positions=True)
    cell: str = option("gru", doc="rnn, lstm or gru (PyTorch's equations).", choices=tuple(GATES))


def local_rnn(ctx, options: LocalRnnOptions, spec, hidden, positions, mask):
    d, rows = spec.model.width, GATES[options.cell] * spec.model.width
    with ctx.at("local_rnn"):
        normed = build_norm(ctx, hidden, Norm(), "norm")
        weights = [ctx.param("weight_ih", (1, rows, d), "matrix"), ctx.param("weight_hh", (1, rows, d), "matrix"),
                   ctx.param("bias_ih", (1, rows), "zeros"), ctx.param("bias_hh", (1, rows), "zeros")]
        local = ctx.op("local_recurrent", normed, *weights, cell=options.cell, window=options.window,
                       label="LocalRNN")
        return ctx.op("add", hidden, local, label="Residual")


POSITIONS.register("local_rnn", LocalRnnOptions, PositionalScheme(embed=local_rnn), examples={
    "r_transformer_decoder": """
topology: decoder
model: {kv_heads: 2}
positional: none
block: {positional: {kind: local_rnn, window: 3, cell: gru}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "r_transformer_lstm_encoder": """
topology: encoder
positional: none
block: {positional: {kind: local_rnn, window: 4, cell: lstm}}
encoder: {layers: 2}
""",
})
