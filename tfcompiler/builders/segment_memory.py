"""Segment recurrence: what a layer remembers of earlier segments.

Transformer-XL (Dai et al. 2019): input `past_memories.N` (B, M, D), the states that entered layer
N in earlier segments (M = 0 at the first); output `present_memories.N`, the last `memory` of those
followed by this segment's. Compressive Transformer (Rae et al. 2019), with `compressed_memory`:
the states pushed out of that memory are compressed by `rate` (each window's mean, or a learned
linear map of its states concatenated: a 1-D convolution with kernel = stride = rate) and appended to
a second state, `past_compressed_memories.N` -> `present_compressed_memories.N`, which keeps its last
`length`. Evicted states short of a whole window wait in a third, `past_pending_memories.N` (fewer
than `rate`), so the windows are the same however the sequence is cut into segments (one token a
call when generating). The layer attends [compressed memory; pending; memory; segment].

The stack's `memory_states: normalized` stores each layer's input after its attention norm, so the
compressor and the readers take the states as they are; `recurrence: enhanced` has layer N read the
states layer N + 1 wrote (the top layer the bottom's) and write what it read followed by its own.
"""
from __future__ import annotations

from ..ir.types import BATCH


def segment_memory(ctx, spec, stack, layer: int, hidden):
    """Returns (the remembered states (B, C + M, D) the layer's keys start with, their mask of ones,
    whether they are normalised already); ``hidden`` (B, S, D) is what the layer writes."""
    width = spec.model.width
    read = (layer + 1) % stack.layers if stack.recurrence == "enhanced" else layer
    states = ctx.input(f"past_memories.{read}", "float32", (BATCH, "past_memory_length", width), role="memory")
    combined = ctx.op("concat", states, hidden, axis=1)
    ctx.graph.outputs[f"present_memories.{layer}"] = ctx.op("keep_last", combined, axis=1, count=stack.memory,
                                                            label="UpdateMemory")
    compressed = stack.compressed_memory
    if compressed is not None:
        past, pending = (ctx.input(f"past_{name}_memories.{read}", "float32", (BATCH, f"past_{name}_length", width),
                                   role="memory") for name in ("compressed", "pending"))
        evicted = ctx.op("concat", pending, ctx.op("drop_last", combined, axis=1, count=stack.memory, label="Evicted"),
                         axis=1)
        with ctx.at("compress"):
            squeezed = compress(ctx, spec, ctx.op("whole_windows", evicted, size=compressed.rate), compressed)
        ctx.graph.outputs[f"present_compressed_memories.{layer}"] = ctx.op(
            "keep_last", ctx.op("concat", past, squeezed, axis=1), axis=1, count=compressed.length,
            label="UpdateCompressedMemory")
        ctx.graph.outputs[f"present_pending_memories.{layer}"] = ctx.op("window_remainder", evicted,
                                                                        size=compressed.rate)
        states = ctx.op("concat", ctx.op("concat", past, pending, axis=1), states, axis=1)
    first = ctx.op("gather", states, ctx.constant(0, dtype="int64"), axis=2)  # (B, C + M)
    ones = ctx.op("cast", ctx.op("add", ctx.op("mul", first, ctx.constant(0.0)), ctx.constant(1.0)), dtype="int64")
    return states, ones, stack.memory_states == "normalized"


def compress(ctx, spec, evicted, options):
    """(B, E, D), E a multiple of rate -> (B, E / rate, D)."""
    windows = ctx.op("fold_windows", evicted, size=options.rate)  # (B, E / rate, rate, D)
    if options.function == "mean":
        return ctx.op("reduce_mean", windows, axes=(2,), keepdims=False, label="MeanCompress")
    width = spec.model.width
    return ctx.linear(ctx.op("reshape", windows, shape=(0, 0, options.rate * width)), width, "")
