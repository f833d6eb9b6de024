"""One step of torch.nn.GRUCell over every position of a (B, N, D) tensor, as the recurrent op with a
single step: Memformer's slot writer and the Compressive Transformer's gated residuals share it.

  r = σ(W_ir x + b_ir + W_hr h + b_hr)    z = σ(W_iz x + b_iz + W_hz h + b_hz)
  n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn))    h' = (1 - z) ⊙ n + z ⊙ h

Weights `weight_ih` (1, 3D, D), `weight_hh`, `bias_ih` (1, 3D), `bias_hh`: torch's layout (gates r, z, n).
"""
from __future__ import annotations


def gru_cell(ctx, x, state, scope: str = "gru", label: str = "ForgetGate"):
    """GRUCell(x, state) on every position: one step of the recurrent op over (B·N, 1, D)."""
    d = ctx.type_of(state).shape[-1]
    with ctx.at(scope):
        weights = [ctx.param("weight_ih", (1, 3 * d, d), "matrix"), ctx.param("weight_hh", (1, 3 * d, d), "matrix"),
                   ctx.param("bias_ih", (1, 3 * d), "zeros"), ctx.param("bias_hh", (1, 3 * d), "zeros")]
        steps = ctx.op("unsqueeze", ctx.op("merge_outer", x), axes=(1,))  # (B·N, 1, D)
        start = ctx.op("unsqueeze", ctx.op("merge_outer", state), axes=(0,))  # (1, B·N, D)
        _, last = ctx.graph.add("recurrent", (steps, *weights, start),
                                dict(cell="gru", nonlinearity="tanh", masked=False, stateful=True),
                                origin=ctx.origin, label=label)
        last = ctx.op("gather", last, ctx.constant(0, dtype="int64"), axis=0)  # (B·N, D)
        return ctx.op("split_outer", last, state)
