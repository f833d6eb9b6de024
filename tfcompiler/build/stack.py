"""A stack: its input layer and positions (the embeddings), its blocks, its final norm."""
from __future__ import annotations

from ..ir.types import BATCH
from ..spec.kinds import INPUTS, POSITIONS
from ..spec.model import Norm
from .block import build_block
from .norm import build_norm


def embeddings_scope(spec, stack_name: str) -> str:
    """`embeddings` for one-stack models, `encoder.embeddings` / `decoder.embeddings` otherwise."""
    return "embeddings" if len(spec.stacks()) == 1 else f"{stack_name}.embeddings"


def segment_memory(ctx, spec, length: int, layer: int, hidden):
    """Transformer-XL's memory of one layer: input `past_memories.N` (B, M, D), the states that
    entered the layer in earlier segments (M = 0 at the first); output `present_memories.N`, the
    last `length` of those followed by this segment's. Returns (states, mask of ones (B, M))."""
    states = ctx.input(f"past_memories.{layer}", "float32", (BATCH, "past_memory_length", spec.model.width),
                       role="memory")
    ctx.graph.outputs[f"present_memories.{layer}"] = ctx.op(
        "keep_last", ctx.op("concat", states, hidden, axis=1), axis=1, count=length, label="UpdateMemory")
    first = ctx.op("gather", states, ctx.constant(0, dtype="int64"), axis=2)  # (B, M)
    ones = ctx.op("cast", ctx.op("add", ctx.op("mul", first, ctx.constant(0.0)), ctx.constant(1.0)), dtype="int64")
    return states, ones


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
                memory = segment_memory(ctx, spec, stack.memory, i, hidden) if stack.memory else None
                hidden = build_block(ctx, block, spec, hidden, start.mask, causal, positions, state, encoder, memory)
        final_norm = stack.final_norm
        if final_norm is None:
            final_norm = bool(blocks) and blocks[-1].placement == "pre"
        if final_norm:
            norm = blocks[-1].norm if blocks else Norm()
            hidden = build_norm(ctx, hidden, norm, "final_norm")
    return hidden, start.mask
