"""Positional scheme `rope`: rotary position embedding (Su et al. 2021), applied to the queries and
keys of every self-attention, never to values or to cross-attention.

Layouts: half_split (GPT-NeoX, Llama, Hugging Face) pairs x[i] with x[i + R/2]; interleaved
(GPT-J, rotary-embedding-torch) pairs x[2i] with x[2i+1]. `rotary_dim` rotates only the first R
features of each head (partial rotary). Scaling changes the angles, not the op: linear divides
positions by `factor` (position interpolation, Chen et al. 2023); ntk raises the base to
base · factor^(R/(R-2)) ("NTK-aware" scaling).

Lowering: the canonical IR `rope` op becomes ONNX RotaryEmbedding from opset 23, and a
Gather/Slice/Mul/Concat form over constant cos/sin tables below it.
"""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import POSITIONS, PositionalKind
from ...language.schema import option
from ...language.shrink_rules import with_head_width
from .base import PositionalScheme


@dataclass(frozen=True, kw_only=True)
class RotaryOptions(PositionalKind):
    """Rotary position embedding on queries and keys."""

    PAPER = "Su et al. 2021"
    COMPUTES = "rotates q and k: half-split or interleaved, partial `rotary_dim`, linear / NTK scaling"
    LOWERING = "`RotaryEmbedding` at opset 23, Gather/Slice/Mul/Concat below"

    layout: str = option("half_split", doc="half_split (Llama, GPT-NeoX) or interleaved (GPT-J).",
                         choices=("half_split", "interleaved"))
    base: float = option(10000.0, doc="Wavelength base θ.", minimum=1.0)
    rotary_dim: int | None = option(None, doc="Features rotated per head (even). Default: the head "
                                    "width.", minimum=2, shrink=with_head_width)
    scaling: str = option("none", doc="none, linear (positions / factor) or ntk (base scaled).",
                          choices=("none", "linear", "ntk"))
    factor: float = option(1.0, doc="Scaling factor for linear and ntk scaling.", minimum=1.0)

    def problems(self, spec, where):
        rotary = self.rotary_dim or spec.model.dh
        if rotary % 2 or rotary > spec.model.dh:
            yield f"rotary_dim must be even and at most the head width {spec.model.dh}, got {rotary}"


def rope(ctx, options: RotaryOptions, spec, x, positions, label: str, shift: int = 0):
    """Heads (B, H, S, Dh) rotated at `positions` as `options` say; `shift`: how far past max_length the
    tables reach (queries rotated at shifted positions)."""
    rotary = options.rotary_dim or spec.model.dh
    base = options.base
    if options.scaling == "ntk":
        base = base * options.factor ** (rotary / (rotary - 2))
    attrs = dict(rotary_dim=rotary, base=float(base), interleaved=options.layout == "interleaved",
                 position_scale=1.0 / options.factor if options.scaling == "linear" else 1.0,
                 max_positions=spec.model.max_length + shift)
    return ctx.op("rope", x, positions, label=label, **attrs)


def rotate(ctx, options: RotaryOptions, spec, parts, site):
    query_positions = site.positions
    if site.query_shift:  # the tables reach the shifted positions too
        query_positions = ctx.op("add", site.positions, ctx.constant(site.query_shift, dtype="int64"))
    parts.query = rope(ctx, options, spec, parts.query, query_positions, "RotaryQuery", site.query_shift)
    key_positions = site.key_positions if site.key_positions is not None else site.positions
    parts.key = rope(ctx, options, spec, parts.key, key_positions, "RotaryKey", site.query_shift)
    return parts


POSITIONS.register("rope", RotaryOptions, PositionalScheme(rotate=rotate), examples={
    "rope_half_split_gqa": """
topology: decoder
model: {kv_heads: 2, bias: false}
positional: {kind: rope, base: 500}
block: {norm: {kind: rms_norm}, ffn: {activation: swiglu}}
decoder: {layers: 2}
head: {kind: lm, tied: false}
""",
    "rope_interleaved_partial_linear": """
topology: encoder
positional: {kind: rope, layout: interleaved, rotary_dim: 6, scaling: linear, factor: 4}
encoder: {layers: 2}
""",
    "rope_ntk_encoder_decoder": """
topology: encoder-decoder
positional: {kind: rope, scaling: ntk, factor: 8, base: 100}
encoder: {layers: 1}
decoder: {layers: 1}
head: {kind: lm}
""",
})
