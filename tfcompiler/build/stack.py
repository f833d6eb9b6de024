"""A stack: its input layer and positions (the embeddings), its blocks, its final norm."""
from __future__ import annotations

from ..spec.kinds import INPUTS, POSITIONS
from ..spec.model import Norm
from .block import build_block
from .norm import build_norm


def embeddings_scope(spec, stack_name: str) -> str:
    """`embeddings` for one-stack models, `encoder.embeddings` / `decoder.embeddings` otherwise."""
    return "embeddings" if len(spec.stacks()) == 1 else f"{stack_name}.embeddings"


def build_stack(ctx, spec, stack_name: str, stack, blocks, encoder=None):
    """Returns (hidden (B,S,D), padding mask (B,S))."""
    with ctx.at(embeddings_scope(spec, stack_name)):
        start = INPUTS.builder(spec.input)(ctx, spec.input, spec, stack_name)
        scheme = POSITIONS.builder(spec.positional)
        used = scheme.embed or scheme.attend or any(b.positional is not None for b in blocks)
        positions = ctx.op("positions", start.ids, axis=1) if used else None
        hidden = start.hidden
        if scheme.embed is not None:
            hidden = scheme.embed(ctx, spec.positional, spec, hidden, positions)
        if spec.embedding.norm:
            hidden = build_norm(ctx, hidden, Norm(kind=spec.embedding.norm, epsilon=spec.embedding.norm_epsilon), "norm")
    causal = stack_name == "decoder"
    state = {"stack": stack_name}
    with ctx.at(stack_name):
        for i, block in enumerate(blocks):
            with ctx.at("layers", i):
                hidden = build_block(ctx, block, spec, hidden, start.mask, causal, positions, state, encoder)
        final_norm = stack.final_norm
        if final_norm is None:
            final_norm = bool(blocks) and blocks[-1].placement == "pre"
        if final_norm:
            norm = blocks[-1].norm if blocks else Norm()
            hidden = build_norm(ctx, hidden, norm, "final_norm")
    return hidden, start.mask
