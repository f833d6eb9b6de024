"""Attention kind `memory_compressed`: memory-compressed attention (Liu et al. 2018, "Generating
Wikipedia by Summarizing Long Sequences"). Keys and values are compressed along the sequence by a
strided convolution (kernel = stride = `compression`, grouped per head), so attention costs
n·n/s. The projected keys and values of padded tokens are zeroed and the tail is zero-padded to a
whole stride; a compressed slot is masked when none of its tokens is real. In decoders (the
paper's T-DMCA) a query sees a slot only once all of the slot's positions are at or before it, and
a learned null key and value (`null_key`, `null_value`, one per key/value head, as lucidrains'
implementation has) stand in front of the slots so that the first queries see something.

lucidrains' memory-compressed-attention module differs in three conventions, each an option: it pads the
front, not the tail, to a whole stride (`padding: front`: the slots end at the last token, so slot
boundaries move with the length), puts the null slot in front in encoders too (`null_slot: always`), and
scales the scores by 1/√width, not 1/√head_width (`scale`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import ATTENTION, AttentionKind
from ...language.schema import option
from ...language.shrink_rules import cap
from .linearised import no_score_positions
from .multi_head import output_projection, with_leading_real
from .parts import AttentionParts, emit_attention


@dataclass(frozen=True, kw_only=True)
class MemoryCompressedOptions(AttentionKind):
    """Keys and values compressed by a strided convolution (Liu et al. 2018)."""

    PAPER = "Liu et al. 2018"
    COMPUTES = ("keys and values shortened by a strided convolution; in decoders causal over whole slots behind a "
                "learned null key")
    LOWERING = "`Conv` + attention over S/s keys"

    no_cache_because: ClassVar[str] = ("its slots compress every `compression` positions counted from the first "
                                       "column: a step would need the unfinished slot's keys beside the finished "
                                       "slots, a two-part cache not written yet")

    compression: int = option(3, doc="s: kernel and stride of the compressing convolution.",
                              minimum=1, shrink=cap(3), positions=True)
    padding: str = option("tail", doc="Where the sequence is zero-padded to a whole stride before the "
                          "convolution: its end (the slots start at the first token) or its front "
                          "(lucidrains' memory-compressed-attention: the slots end at the last token).",
                          choices=("tail", "front"))
    null_slot: str = option("decoders", doc="Where the learned null key and value stand in front of the "
                            "slots: in decoders, so that the first queries see something (the paper's T-DMCA), "
                            "or in every stack (lucidrains' module).", choices=("decoders", "always"))
    scale: float | None = option(None, doc="Score scale. Default 1/√head_width (lucidrains' module: 1/√width).",
                                 minimum=0.0)

    def problems(self, spec, where):
        yield from no_score_positions("memory_compressed", spec)


def build_memory_compressed(ctx, options: MemoryCompressedOptions, spec, site):
    m = spec.model
    s = options.compression
    front = {"front": True} if options.padding == "front" else {}  # no attribute by default: the paper's
    null = site.causal or options.null_slot == "always"
    query = ctx.split_heads(ctx.linear(site.x, m.heads * m.dh, "query", m.bias), m.heads, m.dh)
    keep, slot_mask = None, None
    if site.mask is not None:
        keep = ctx.op("cast", ctx.op("unsqueeze", site.mask, axes=(2,)), dtype="float32")  # (B, T, 1)
        # a slot is real when any of its tokens is: compress the mask with a max over each stride
        ones = ctx.constant([[[1.0] * s]])
        slots = ctx.op("compress", keep, ones, ctx.constant([0.0]), stride=s, groups=1, **front)
        slot_mask = ctx.op("cast", ctx.op("less", ctx.constant(0.0), ctx.op("reshape", slots, shape=(0, 0))),
                           dtype="int64")
    heads = []
    for name in ("key", "value"):
        projected = ctx.linear(site.memory, m.kv * m.dh, name, m.bias)
        if keep is not None:
            projected = ctx.op("mul", projected, keep)
        with ctx.at(f"{name}_compression"):
            weight = ctx.param("weight", (m.kv * m.dh, m.dh, s), "matrix")
            bias = ctx.param("bias", (m.kv * m.dh,), "zeros")
            compressed = ctx.op("compress", projected, weight, bias, stride=s, groups=m.kv, label="Compress",
                                **front)
        compressed = ctx.split_heads(compressed, m.kv, m.dh)
        if null:  # the null slot in front
            null = ctx.op("tile_batch", ctx.param(f"null_{name}", (1, m.kv, 1, m.dh), "embedding"), site.x)
            compressed = ctx.op("concat", null, compressed, axis=2)
        heads.append(compressed)
    scale = options.scale if options.scale is not None else m.dh ** -0.5
    parts = AttentionParts(query, *heads, scale=scale, causal=False)
    if site.causal:
        parts.mask_biases.append(ctx.op("compressed_causal_bias", query, heads[0], stride=s, leading=1, **front))
    if null and slot_mask is not None:
        slot_mask = with_leading_real(ctx, slot_mask)
    if slot_mask is not None:
        parts.mask_biases.append(ctx.op("padding_bias", slot_mask))
    context, _ = emit_attention(ctx, parts)
    return output_projection(ctx, spec, context)


ATTENTION.register("memory_compressed", MemoryCompressedOptions, build_memory_compressed, examples={
    "memory_compressed_encoder": """
topology: encoder
model: {kv_heads: 2}
block: {attention: {kind: memory_compressed, compression: 3}}
encoder: {layers: 2}
""",
    "memory_compressed_lucidrains_encoder": """
topology: encoder
block: {attention: {kind: memory_compressed, compression: 3, padding: front, null_slot: always, scale: 0.2}}
encoder: {layers: 2}
""",
    "memory_compressed_lucidrains_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: memory_compressed, compression: 4, padding: front}}
decoder: {layers: 2}
head: {kind: lm}
""",
    "memory_compressed_decoder": """
topology: decoder
model: {kv_heads: 2}
block: {attention: {kind: memory_compressed, compression: 3}}
decoder: {layers: 2}
head: {kind: lm}
""",
})
