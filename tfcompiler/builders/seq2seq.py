"""An encoder-decoder compiled for generation, as two models in Optimum's layout: the encoder model
reads the source once and gives, besides its states, every decoder layer's cross-attention keys and
values; the decoder model reads them and keeps its own self-attention cache, a step at a time.

    encoder_model:  input_ids, attention_mask -> last_hidden_state, present.{i}.encoder.key / .value
                    [, present_state.{i}.decoder.h / .c: a `start: encoder` recurrent layer's first state]
                    [, encoder_attention_mask: the source's mask after an input that shortens it, speech
                     frames (input_features, attention_mask) subsampled; the decoder model takes it]
    decoder_model:  input_ids, attention_mask (B, P+S), [position_ids], encoder_attention_mask,
                    past_key_values.{i}.encoder.key / .value, past_key_values.{i}.decoder.key / .value
                    -> logits, present.{i}.decoder.key / .value

Both name their weights as the one-graph model does, so one weights file serves the three.
"""
from __future__ import annotations

from ..ir.graph import Graph
from ..ir.types import BATCH
from .attention.multi_head import keys_and_values
from .attention.recurrent import handed_over_states
from .cache import ENCODER_SEQUENCE, DecoderCache
from .context import Context
from .heads import build_head
from .stack import build_stack

PARTS = ("encoder", "decoder")


def build_encoder_model(spec) -> Graph:
    ctx = Context()
    hidden, mask = build_stack(ctx, spec, "encoder", spec.encoder, spec.encoder_blocks)
    ctx.graph.outputs["last_hidden_state"] = hidden
    if mask is not None and mask not in ctx.inputs.values():  # the input shortened the source (frames)
        ctx.graph.outputs["encoder_attention_mask"] = mask
    for i, block in enumerate(spec.decoder_blocks):
        cross = block.cross_attention if block.cross_attention is not None else block.attention
        with ctx.at("decoder", "layers", i, "cross_attention"):
            key, value = keys_and_values(ctx, cross, spec, hidden)
        ctx.graph.outputs.update({f"present.{i}.encoder.key": key, f"present.{i}.encoder.value": value})
    ctx.graph.outputs.update(handed_over_states(ctx, spec))
    return ctx.graph


def build_decoder_model(spec) -> Graph:
    ctx = Context(cache=DecoderCache(spec.model.max_length, suffix=".decoder"))
    encoder_mask = ctx.input("encoder_attention_mask", "int64", (BATCH, ENCODER_SEQUENCE), role="encoder_mask")
    hidden, _ = build_stack(ctx, spec, "decoder", spec.decoder, spec.decoder_blocks, encoder=(None, encoder_mask))
    ctx.graph.outputs.update(build_head(ctx, spec, hidden, None))
    ctx.graph.outputs.update(ctx.cache.presents())
    return ctx.graph
