"""Attention kind `recurrent`: an RNN, LSTM or GRU layer as the block's sequence mixer, with
PyTorch's equations and weight layout (tfcompiler.ir.ops.recurrent), lowered to ONNX RNN / LSTM / GRU.
Bidirectional layers (encoder stacks only) run a backward direction too and concatenate both; each
direction has width/directions hidden units, so the layer keeps the model width. Padded positions are
skipped wherever they are (a padded step leaves the state as it is; right padding as PyTorch's packed
sequences). A plain stacked RNN is blocks of this kind with `placement: none` and `ffn: {enabled:
false}`; inside ordinary blocks it mixes the sequence with residuals, norms and an FFN around it.
In a decoder compiled with a cache (tfcompiler.builders.cache) every recurrent layer carries its
state between calls as the cache's fixed-size states: `past_state.N.h` (and `.c` for an LSTM),
(batch, 1, width), N the decoder layer, zeros before the first call, `present_state.N.h` (`.c`) after
it, so generation feeds one token per step. Without a cache (--no-cache), `state` gives the layer the
same carried state by its own names: inputs `past_states.K.h` (`.c`), outputs `present_states.K.h`
(`.c`), shaped (directions, batch, width/directions), K counting the stateful layers from 0
(tfc_runtime.Segments carries them). They are torch's h0 / c0 and h_n / c_n of the layer, each row's
after its last real token (the backward direction's after its first), so `state` serves an encoder
too, bidirectional layers included: its states in and out of one call. With `start: encoder` (the
decoder of an encoder-decoder, Sutskever et al. 2014) the decoder's k-th recurrent layer starts from
the final state of the encoder's k-th one (a bidirectional layer's two directions concatenated), each
row's state after its last real token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ...ir.ops.recurrent import GATES
from ...ir.types import BATCH
from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option


@dataclass(frozen=True, kw_only=True)
class RecurrentOptions(AttentionKind):
    """An RNN, LSTM or GRU layer (PyTorch's semantics)."""

    PAPER = "Elman 1990; LSTM (Hochreiter & Schmidhuber 1997); GRU (Cho et al. 2014)"
    COMPUTES = ("an RNN, LSTM or GRU as the sequence mixer (PyTorch's equations and weight layout), optionally "
                "bidirectional or stateful")
    LOWERING = ("ONNX `RNN` / `LSTM` / `GRU` (gates reordered, `linear_before_reset` for the GRU, padding as "
                "`sequence_lens`)")

    self_only: ClassVar[bool] = True  # attends its own sequence only: no cross-attention
    no_cache_because: ClassVar[str] = ""  # its h (and c) are the state (past_state.N.h)
    cached_as: ClassVar[str] = "its state (`past_state.N.h`, and `.c` for an LSTM): O(1) a step"
    reads_any_width: ClassVar[bool] = True  # weight_ih follows what enters the layer (input vectors of F)

    cell: str = option("lstm", doc="rnn, lstm or gru.", choices=tuple(GATES))
    bidirectional: bool = option(False, doc="A backward direction too (encoders); outputs concatenated.")
    nonlinearity: str = option("tanh", doc="The rnn cell's activation.", choices=("tanh", "relu"))
    # with a cache every recurrent layer carries its state as past_state.N.h (.c); `state` names it for --no-cache
    state: bool = option(False, doc="The layer's first state as inputs past_states.K.h (.c) and its last as "
                         "outputs present_states.K.h (.c), (directions, batch, hidden): torch's h0 / c0 and h_n / "
                         "c_n, each row's after its last real token; a decoder carries them from call to call. "
                         "Topology encoder or decoder.")
    start: str = option("zeros", doc="The state the layer starts from: zeros, or (the decoder of an "
                        "encoder-decoder) the final state of the encoder's recurrent layer of the same index "
                        "among its recurrent layers, both directions concatenated.", choices=("zeros", "encoder"))

    def problems(self, spec, where):
        if self.start == "encoder" and where.stack == "encoder":
            yield "start: encoder is for the decoder's layers (they start from the encoder's states)"
        if self.bidirectional and where.stack == "decoder":
            yield "a bidirectional layer sees the future: only encoder stacks can have one"
        if self.start == "encoder":
            yield from handover_problems(self, spec)
        if self.state and spec.topology not in ("encoder", "decoder"):
            yield f"a layer's states in and out (past_states.K, present_states.K) are a one-stack model's: it needs " \
                  f"topology 'encoder' or 'decoder', got '{spec.topology}'"
        directions = 2 if self.bidirectional else 1
        if spec.model.width % directions:
            yield f"a bidirectional layer splits the width in two: width {spec.model.width} is odd"


def handover_problems(options: RecurrentOptions, spec):
    if spec.topology != "encoder-decoder":
        yield f"start: encoder hands an encoder's state to its decoder: it needs topology 'encoder-decoder', " \
              f"got '{spec.topology}'"
        return
    if options.state:
        yield "a layer starts from the encoder's state or from past_states, not both"
    if options.bidirectional:
        yield "start: encoder is for decoder layers (one direction)"
    encoder = [b.attention for b in spec.encoder_blocks if isinstance(b.attention, RecurrentOptions)]
    decoder = [b.attention for b in spec.decoder_blocks if isinstance(b.attention, RecurrentOptions)]
    if len(decoder) > len(encoder):
        yield f"{len(decoder)} decoder recurrent layers start from the encoder's, which has {len(encoder)}"
    elif any((e.cell == "lstm") != (d.cell == "lstm") for e, d in zip(encoder, decoder) if d.start == "encoder"):
        yield "an LSTM hands over a cell state too: start: encoder pairs LSTMs with LSTMs, RNN/GRU with RNN/GRU"


def hands_over(spec) -> bool:
    """Whether a decoder layer starts from the encoder's states."""
    return any(isinstance(b.attention, RecurrentOptions) and b.attention.start == "encoder"
               for b in spec.decoder_blocks)


def build_recurrent(ctx, options: RecurrentOptions, spec, site):
    directions = 2 if options.bidirectional else 1
    hidden, rows = spec.model.width // directions, GATES[options.cell] * (spec.model.width // directions)
    inputs = ctx.type_of(site.x).shape[-1]  # the width, or F where input vectors enter the first layer
    weights = [ctx.param("weight_ih", (directions, rows, inputs), "matrix"),
               ctx.param("weight_hh", (directions, rows, hidden), "matrix"),
               ctx.param("bias_ih", (directions, rows), "zeros"), ctx.param("bias_hh", (directions, rows), "zeros")]
    mask = [site.own_mask(ctx)] if site.mask is not None else []
    parts = ("h", "c") if options.cell == "lstm" else ("h",)
    index = site.state["recurrent_layers"] = site.state.get("recurrent_layers", -1) + 1
    states = []
    if site.cache is not None:  # (B, 1, H) <-> (1, B, H), the cell's layout with its one direction
        states = [ctx.op("transpose", site.cache.state(ctx, part, (1, hidden)), perm=(1, 0, 2)) for part in parts]
    elif options.state:
        layer = site.state["stateful_layers"] = site.state.get("stateful_layers", -1) + 1
        states = [ctx.input(f"past_states.{layer}.{part}", "float32", (directions, BATCH, hidden),
                            role="recurrent_state") for part in parts]
    elif options.start == "encoder":
        states = [handed_over(ctx, state) for state in ctx.carried["encoder_states"][index][:len(parts)]]
    elif site.state["stack"] == "encoder" and hands_over(spec):  # from zeros, keeping the final states
        zeros = ctx.op("tile_batch", ctx.constant(np.zeros((1, directions, hidden), np.float32)), site.x)
        states = [ctx.op("transpose", zeros, perm=(1, 0, 2))] * len(parts)
    outputs = ctx.graph.add("recurrent", [site.x, *weights, *mask, *states],
                            dict(cell=options.cell, nonlinearity=options.nonlinearity, masked=bool(mask),
                                 stateful=bool(states)), origin=ctx.origin, label=options.cell.upper())
    if site.cache is not None:
        for part, value in zip(parts, outputs[1:]):
            site.cache.update(part, ctx.op("transpose", value, perm=(1, 0, 2)))
    elif options.state:
        for part, value in zip(parts, outputs[1:]):
            ctx.graph.outputs[f"present_states.{layer}.{part}"] = value
    elif states and site.state["stack"] == "encoder":
        ctx.carried.setdefault("encoder_states", []).append(outputs[1:])
    return outputs[0]


def handed_over_states(ctx, spec) -> dict:
    """The encoder model's outputs for a decoder model (tfcompiler.builders.seq2seq): each `start:
    encoder` decoder layer i's first state, `present_state.{i}.decoder.h` (`.c`) (B, 1, H), which the
    caller feeds as that layer's past_state in the decoder model's first call."""
    outputs, k = {}, -1
    for i, block in enumerate(spec.decoder_blocks):
        if not isinstance(block.attention, RecurrentOptions):
            continue
        k += 1
        if block.attention.start == "encoder":
            parts = ("h", "c") if block.attention.cell == "lstm" else ("h",)
            with ctx.at("decoder", "layers", i, "attention"):
                for part, state in zip(parts, ctx.carried["encoder_states"][k]):
                    outputs[f"present_state.{i}.decoder.{part}"] = ctx.op("transpose", handed_over(ctx, state),
                                                                          perm=(1, 0, 2))
    return outputs


def handed_over(ctx, state):
    """An encoder layer's final state (directions, B, H/directions) as one direction (1, B, H)."""
    directions = ctx.type_of(state).shape[0]
    pieces = [ctx.op("gather", state, ctx.constant(d, dtype="int64"), axis=0) for d in range(directions)]
    joined = ctx.op("concat", *pieces, axis=1) if directions > 1 else pieces[0]
    return ctx.op("unsqueeze", joined, axes=(0,), label="EncoderState")


ATTENTION.register("recurrent", RecurrentOptions, build_recurrent, examples={
    "lstm_bidirectional_stack": """
topology: encoder
positional: none
block: {placement: none, attention: {kind: recurrent, cell: lstm, bidirectional: true}, ffn: {enabled: false}}
encoder: {layers: 2}
""",
    "lstm_bidirectional_states_in_and_out": """
topology: encoder
positional: none
block: {placement: none, attention: {kind: recurrent, cell: lstm, bidirectional: true, state: true},
        ffn: {enabled: false}}
encoder: {layers: 2}
""",
    "gru_decoder_in_blocks": """
topology: decoder
block: {placement: pre, attention: {kind: recurrent, cell: gru}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "rnn_relu_decoder": """
topology: decoder
positional: none
block: {placement: none, attention: {kind: recurrent, cell: rnn, nonlinearity: relu}, ffn: {enabled: false}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "lstm_seq2seq_with_attention": """
topology: encoder-decoder
positional: none
block: {placement: post, attention: {kind: recurrent, cell: lstm}, cross_attention: {kind: multi_head}}
encoder: {layers: 2, block: {attention: {kind: recurrent, cell: lstm, bidirectional: true}}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "lstm_seq2seq_state_handover": """
topology: encoder-decoder
positional: none
block: {placement: none, ffn: {enabled: false}, cross_attention: {kind: multi_head}}
encoder: {layers: 2, block: {attention: {kind: recurrent, cell: lstm, bidirectional: true}}}
decoder: {layers: 2, block: {attention: {kind: recurrent, cell: lstm, start: encoder}}}
head: {kind: lm}
""",
    "gru_seq2seq_state_handover_one_layer": """
topology: encoder-decoder
positional: none
block: {placement: pre, attention: {kind: recurrent, cell: gru}, cross_attention: {kind: multi_head}}
encoder: {layers: 2}
decoder: {layers: 1, block: {attention: {kind: recurrent, cell: gru, start: encoder}}}
head: {kind: lm}
""",
})
