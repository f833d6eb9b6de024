"""Position-wise feed-forward network: down(act(up(x))), or down(act(gate(x)) * up(x)) for the gated
variants SwiGLU and GeGLU (Shazeer 2020); with `chunk`, marked to run by blocks of tokens
(tfcompiler.ir.ops.token_chunks)."""
from __future__ import annotations

from ..language.model import Ffn

_ACTIVATION = {"relu": ("relu", {}), "gelu": ("gelu", {}), "gelu_tanh": ("gelu", {"approximate": "tanh"}),
               "silu": ("silu", {}), "swiglu": ("silu", {}), "geglu": ("gelu", {}),
               "geglu_tanh": ("gelu", {"approximate": "tanh"})}


def activate(ctx, x, activation: str):
    """x through the named activation (a gated kind's: the one on its gate)."""
    op, attrs = _ACTIVATION[activation]
    return ctx.op(op, x, label="Activation", **attrs)


def build_ffn(ctx, x, ffn: Ffn, spec):
    m = spec.model
    with ctx.at("ffn"):
        if ffn.chunk:
            begin = x = ctx.op("chunks_begin", x, chunk=ffn.chunk, label="TokenChunks")
        if ffn.gated:
            gate = activate(ctx, ctx.linear(x, m.ffn_width, "gate", m.bias), ffn.activation)
            hidden = ctx.op("mul", gate, ctx.linear(x, m.ffn_width, "up", m.bias), label="Gate")
        else:
            hidden = activate(ctx, ctx.linear(x, m.ffn_width, "up", m.bias), ffn.activation)
        y = ctx.linear(hidden, m.width, "down", m.bias)
        return ctx.op("chunks_end", y, begin, label="TokenChunks") if ffn.chunk else y
