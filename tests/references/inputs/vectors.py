"""Input layer `vectors`: continuous vectors (B, S, F), times a (F, d) matrix plus a bias when F is not the
model width and the spec keeps the linear embedding (one matrix for both stacks of an encoder-decoder that
shares its embedding), as they are otherwise; times √d or a given scale."""
from __future__ import annotations

from ..registry import INPUTS
from .tokens import scaled


@INPUTS.register("vectors")
class Vectors:
    def source(self, feeds, prefix: str):
        """The stack's input: inputs_embeds (B, S, F)."""
        return feeds[f"{prefix}inputs_embeds"]

    def embed(self, ref, options, scope: str, x, token_types):
        spec = ref.spec
        x = x.astype("float64")
        if options.linear and (options.features or spec.model.width) != spec.model.width:
            shared = spec.topology == "encoder-decoder" and spec.embedding.shared
            name = "embeddings.vectors" if shared else f"{scope}.vectors"
            x = x @ ref.w[f"{name}.weight"] + (ref.w[f"{name}.bias"] if options.bias else 0.0)
        return scaled(spec, x)
