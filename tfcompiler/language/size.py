"""How big a spec's weights are, from the typed spec alone: a formula over its sizes, computed before any
graph is built or weight allocated, so that `tfc check` and `tfc compile` can refuse a model whose weights
cannot fit in this machine's memory at once (saying how much it would take) instead of running for minutes
and dying of a MemoryError. It is an estimate meant to err high: embeddings and head, and per layer the
attention, FFN and norm matrices of a dense transformer block (the kinds' own extras are small beside them);
tests/test_schema.py checks it against the built graphs of the shipped specs."""
from __future__ import annotations

import os
from dataclasses import dataclass

FP32_BYTES = 4
GIB = 1 << 30


@dataclass(frozen=True)
class Size:
    """Estimated parameters, by the part of the spec that drives them."""

    embeddings: int  # the input layer (token tables: driven by model.vocab_size) and the embedding norm
    positions: int  # a position table (counted whatever the scheme): driven by model.max_length
    head: int  # the output head (an untied LM head is vocab_size x width too) and the stacks' final norms
    stacks: dict[str, tuple[int, int, int]]  # stack name -> (layers, parameters, parameters of its largest layer)

    @property
    def parameters(self) -> int:
        layers = sum(parameters for _, parameters, _ in self.stacks.values())
        return self.embeddings + self.positions + self.head + layers

    @property
    def bytes(self) -> int:
        return self.parameters * FP32_BYTES


def physical_memory() -> int:
    """This machine's physical memory in bytes (0 where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def attention_parameters(dims) -> int:
    """Query, key, value and output projections with their biases (grouped-query keys and values)."""
    inner, kv_inner = dims.heads * dims.dh, dims.kv * dims.dh
    return 2 * dims.width * inner + 2 * dims.width * kv_inner + (inner + 2 * kv_inner + dims.width) * dims.bias


def layer_parameters(dims, block, cross: bool) -> int:
    """One block: its attention (and cross-attention), FFN and norms. Recurrent kinds hold up to eight
    width x width matrices (an LSTM's four gates on the input and on the state), a dense attention four:
    the estimate counts eight so that it stays above every kind's."""
    width = dims.width
    attention = 2 * attention_parameters(dims) * (2 if cross else 1)
    ffn = 0
    if block is None or block.ffn.enabled:
        gated = block is not None and block.ffn.gated
        ffn = (3 if gated else 2) * width * dims.ffn_width + (dims.ffn_width * (2 if gated else 1) + width) * dims.bias
    norms = 2 * width * (3 if cross else 2)
    gates = 0
    if block is not None and block.residual == "gru":  # a GRU cell per sublayer: two 3D x D matrices, two biases
        gates = (2 + cross - (not block.ffn.enabled)) * 6 * width * (width + 1)
    return attention + ffn + norms + gates


def positional_parameters(spec, block) -> int:
    """What the layer's positional scheme adds to its self-attention (window_offset's table per layer)."""
    scheme = block.positional if block is not None and block.positional is not None else spec.positional
    return scheme.layer_parameters(spec)


def stack_extras(stack, dims) -> int:
    """Per layer, what a stack's memories add: a compressed memory's convolution over `rate` states, and
    (counted at every layer, as a bound) Memformer's slots with the GRU and attention that write them."""
    width, extra = dims.width, 0
    compressed, slots = getattr(stack, "compressed_memory", None), getattr(stack, "memory_slots", None)
    if compressed is not None:
        extra += compressed.rate * width * width + width
    if slots is not None:
        extra += 2 * slots.count * width + 6 * width * (width + 1) + attention_parameters(dims)
    return extra


def estimate(spec, segments: dict[str, list]) -> Size:
    """The size of ``spec`` whose stacks' layers are ``segments[stack]``: runs (count, Block) as the
    loader resolves them (a Block may be None where it did not parse: the defaults are counted)."""
    dims, width = spec.model, spec.model.width
    inputs = {id(spec.input_of(name)): spec.input_of(name) for name, _, _ in spec.stacks()}
    embeddings = sum(read.parameters(spec) for read in inputs.values()) + 4 * width
    head = spec.head.parameters(spec)
    stacks = {}
    for name, stack, _ in spec.stacks():
        cross = name == "decoder" and spec.encoder is not None
        extra = stack_extras(stack, dims)
        runs = [(count, layer_parameters(dims, block, cross) + positional_parameters(spec, block) + extra)
                for count, block in segments.get(name, ())]
        stacks[name] = (stack.layers, sum(count * per_layer for count, per_layer in runs),
                        max((per_layer for _, per_layer in runs), default=0))
        head += 2 * width  # the stack's final norm
    return Size(embeddings, dims.max_length * width, head, stacks)


def too_big(size: Size, memory: int) -> tuple[str, str] | None:
    """(the spec path that drives the size, why it is refused) when the weights alone need more than
    ``memory`` bytes (a compile holds them at least twice: as arrays and in the ONNX model it writes);
    None when they fit or the memory is unknown (0)."""
    if not memory or size.bytes <= memory:
        return None
    parts = {"model.vocab_size": size.embeddings + size.head, "model.max_length": size.positions}
    for name, (layers, parameters, per_layer) in size.stacks.items():
        # one layer alone too big: the width drives it; else the number of layers does
        key = "model.width" if per_layer * FP32_BYTES > memory else f"{name}.layers"
        parts[key] = parts.get(key, 0) + parameters
    path = max(parts, key=parts.get)
    where = ", ".join([f"embeddings and head {size.embeddings + size.positions + size.head:,}"] +
                      [f"{name} {layers:,} layers x {per_layer:,}"
                       for name, (layers, _, per_layer) in size.stacks.items()])
    return path, (f"the weights would take about {size.parameters:,} parameters, {size.bytes / GIB:,.1f} GiB in fp32 "
                  f"({where}): more than this machine's {memory / GIB:,.1f} GiB of memory")
