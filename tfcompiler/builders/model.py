"""Spec -> IR: the topology's stacks and head, as a graph whose params carry names and init
schemes but no values yet (``tfcompiler.builders.weights`` fills them)."""
from __future__ import annotations

from ..ir.graph import Graph
from ..language.model import Spec
from .cache import NOT_ASKED, SEPARATE_MODELS, DecoderCache, why_no_cache
from .context import Context
from .heads import build_head
from .hierarchy import build_hierarchy
from .seq2seq import PARTS, build_decoder_model, build_encoder_model
from .stack import build_stack


def build_graph(spec: Spec, cache: bool = False, part: str | None = None) -> Graph:
    """``cache``: a decoder-only model with an exact incremental form gets KV-cache inputs and outputs
    (tfcompiler.builders.cache); `graph.metadata["no_cache"]` says why another has none. ``part``:
    the encoder or the decoder model of an encoder-decoder compiled for generation (builders.seq2seq)."""
    no_cache = why_no_cache(spec) if cache else NOT_ASKED
    if not no_cache and spec.encoder is not None:
        no_cache = SEPARATE_MODELS
    if part is not None:
        if spec.topology != "encoder-decoder" or part not in PARTS:
            raise ValueError(f"part {part!r}: only an encoder-decoder has parts, {' and '.join(PARTS)}")
        graph = build_encoder_model(spec) if part == "encoder" else build_decoder_model(spec)
        graph.metadata.update(name=f"{spec.name}-{part}", topology=spec.topology, max_length=spec.model.max_length,
                              part=part,
                              no_cache="" if part == "decoder" else "the encoder reads its input once")
        return graph
    ctx = Context(cache=DecoderCache(spec.model.max_length) if not no_cache else None)
    encoder = None
    outputs = {}
    if spec.topology == "hierarchical":
        hidden, mask, outputs["token_hidden_state"] = build_hierarchy(ctx, spec)
    elif spec.encoder is not None:
        encoder = build_stack(ctx, spec, "encoder", spec.encoder, spec.encoder_blocks)
        hidden, mask = encoder
    if spec.decoder is not None:
        hidden, mask = build_stack(ctx, spec, "decoder", spec.decoder, spec.decoder_blocks, encoder)
        if encoder is not None and spec.head.kind == "none":
            outputs["encoder_last_hidden_state"] = encoder[0]
    ctx.graph.outputs.update(build_head(ctx, spec, hidden, mask))
    ctx.graph.outputs.update(outputs)
    if ctx.cache:
        ctx.graph.outputs.update(ctx.cache.presents())
    ctx.graph.metadata.update(name=spec.name, topology=spec.topology, max_length=spec.model.max_length,
                              no_cache=no_cache)
    return ctx.graph
