"""The KV cache of a decoder compiled for incremental decoding, with the names and layout Hugging
Face, Optimum and onnxruntime-genai use: one graph serves the prompt (an empty past) and every step.

    input_ids (B, S), attention_mask (B, P+S), position_ids (B, S),
    past_key_values.{i}.key / .value (B, Hkv, P, Dh)
      -> logits, present.{i}.key / .value (B, Hkv, P+S, Dh)

Each self-attention appends its new keys and values (rotated, for rotary positions) to the past
ones; attention, causality and relative positions already align the queries with the end of the
keys. Positions come from `position_ids`, which the caller derives from the mask (``cumsum - 1``),
so left-padded rows count from their first real token. `logits_to_keep` (an input with a default,
0 = every position) lets generation compute the LM head only for the last position.

A decoder has this form when its input, every positional scheme and every attention kind of its
stack declares it (`no_cache_because` empty, tfcompiler.language.kinds) and its stack carries
nothing else between positions (segment memory, pooling, memory slots); otherwise it compiles
without a cache and :func:`why_no_cache` says why.

A decoder with a segment memory (Transformer-XL, the Compressive Transformer) carries its memories
instead (`tfcompiler.cache` = `memory`): generation feeds the prompt as one segment, then each new
token as a segment of its own, every layer attending the last `memory` states that entered it (and
the compressed ones), Transformer-XL's evaluation (Dai et al. 2019, section 3.2). That equals the
forward over the whole sequence while the sequence before each call fits in the memory.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Value
from ..ir.types import BATCH, SEQUENCE

PAST = "past_sequence_length"
ENCODER_SEQUENCE = "encoder_sequence_length"


def why_no_cache(spec) -> str:
    """"" when the spec's decoder has an exact incremental form, else the reason it has none."""
    if spec.decoder is None:
        return f"a {spec.topology} model has no decoder"
    if spec.head.no_cache_because:
        return f"its `{spec.head.kind}` head {spec.head.no_cache_because}"
    if spec.decoder.memory:
        return ("its decoder's segment memory is what it carries from call to call (past_memories.N -> "
                "present_memories.N, Transformer-XL's recurrence over segments)")
    for name, stack, _ in spec.stacks():
        # an encoder's slots are read once per source, by the encoder model; its pooling would shorten the
        # source mask the decoder model is given
        carried = [what for what, present in (("pooling", stack.resample),
                                              ("memory slots", stack.memory_slots and name == "decoder")) if present]
        if carried:
            return f"its {name} carries {carried[0]} between positions, which has no incremental form yet"
    read = type(spec.input_of("decoder"))
    if read.no_cache_because:
        return f"input '{read.KIND}': {read.no_cache_because}"
    for i, block in enumerate(spec.decoder_blocks):
        positional = block.positional if block.positional is not None else spec.positional
        for what, options in (("attention", block.attention), ("positional", positional)):
            if options.no_cache_because:  # the instance's: an option may rule a cache out (performer's ε)
                return f"decoder layer {i} {what} '{type(options).KIND}': {options.no_cache_because}"
        cross = block.cross_attention if block.cross_attention is not None else block.attention
        if spec.encoder is not None and type(cross).KIND != "multi_head":
            return f"decoder layer {i} cross-attention '{type(cross).KIND}': only multi_head's keys are cached"
    return ""


def cache_form(spec, no_cache: str) -> str:
    """The model's `tfcompiler.cache`: `kv`; `memory` (a decoder-only model generating through its
    segment memories); else `none: ` and why."""
    if not no_cache:
        return "kv"
    asked = no_cache != NOT_ASKED
    return "memory" if asked and spec.encoder is None and spec.decoder is not None and spec.decoder.memory else \
        f"none: {no_cache}"


NOT_ASKED = "not asked for"
SEPARATE_MODELS = ("an encoder-decoder model generates as two models, an encoder and a decoder with the cache: "
                   "compile it to a folder (-o DIR/)")


def why_left_padding_shifts(spec, cached: bool = True) -> str:
    """"" when a left-padded row computes what the row alone does, else why not. A model without the
    cache's `position_ids` counts positions from the first column, pads included."""
    if spec.decoder is not None and spec.decoder.memory:
        return "a row's padding enters its segment memory, which later calls attend"
    if not cached:
        return "compiled without a cache, it counts positions from the first column, pads included"
    for i, block in enumerate(spec.stacks()[-1][2]):
        if block.attention.left_padding_shifts:  # the instance's: an option may make padding count (performer's)
            return f"layer {i} attention '{type(block.attention).KIND}': {block.attention.left_padding_shifts}"
    return ""


@dataclass
class LayerCache:
    """One self-attention's past and present keys and values (`.decoder` names them in the decoder
    model of an encoder-decoder, as Optimum does)."""

    index: int
    suffix: str = ""
    presents: dict = field(default_factory=dict)

    def cross(self, ctx, spec) -> tuple[Value, Value]:
        """The cross-attention's keys and values (B, Hkv, T, Dh), which the encoder model computed."""
        shape = (BATCH, spec.model.kv, ENCODER_SEQUENCE, spec.model.dh)
        return tuple(ctx.input(f"past_key_values.{self.index}.encoder.{name}", "float32", shape, role=f"cross_{name}")
                     for name in ("key", "value"))

    def extend(self, ctx, key: Value, value: Value, keep: int | None = None) -> tuple[Value, Value]:
        """New keys and values (B, Hkv, S, Dh) -> the past ones followed by them (B, Hkv, P+S, Dh);
        the present keeps only the last `keep` of them when later queries can reach no further back (a
        sliding window), so the cache stays that size however long generation runs."""
        extended = []
        for name, new in (("key", key), ("value", value)):
            _, heads, _, width = ctx.type_of(new).shape
            past = ctx.input(f"past_key_values.{self.index}{self.suffix}.{name}", "float32",
                             (BATCH, heads, PAST, width), role=f"past_{name}")
            both = ctx.op("concat", past, new, axis=2, label=f"Cache{name.title()}")
            kept = both if keep is None else ctx.op("keep_last", both, axis=2, count=keep, label="Window")
            self.presents[f"present.{self.index}{self.suffix}.{name}"] = kept
            extended.append(both)
        return extended[0], extended[1]

    def state(self, ctx, name: str, shape: tuple) -> Value:
        """A fixed-size state the layer carries from step to step (running sums of linear attention):
        the input `past_state.{i}.{name}`, zeros before the first call; give the new one to `update`."""
        return ctx.input(f"past_state.{self.index}{self.suffix}.{name}", "float32", (BATCH,) + tuple(shape),
                         role="state")

    def update(self, name: str, value: Value) -> None:
        """The state after this call: the output `present_state.{i}.{name}`."""
        self.presents[f"present_state.{self.index}{self.suffix}.{name}"] = value


@dataclass
class DecoderCache:
    """The cache inputs of a decoder-only model and the present outputs its layers add."""

    max_length: int
    suffix: str = ""  # ".decoder" in an encoder-decoder's decoder model
    layers: dict[int, LayerCache] = field(default_factory=dict)

    @property
    def mask_axis(self) -> str:
        """The attention mask covers the past and the new tokens (the keys)."""
        return f"{PAST}+{SEQUENCE}"

    def layer(self, index: int) -> LayerCache:
        return self.layers.setdefault(index, LayerCache(index, self.suffix))

    def position_ids(self, ctx) -> Value:
        return ctx.input("position_ids", "int64", (BATCH, SEQUENCE), role="position_ids", range=self.max_length)

    def logits_to_keep(self, ctx) -> Value:
        """How many last positions the LM head computes: 0 (the default) for all of them."""
        return ctx.input("logits_to_keep", "int64", (), role="logits_to_keep", default=0)

    def presents(self) -> dict[str, Value]:
        return {name: value for index in sorted(self.layers) for name, value in self.layers[index].presents.items()}
