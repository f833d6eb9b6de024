"""Input layer `tokens`: token ids looked up in an embedding table (shared by an encoder-decoder's
stacks unless the spec says otherwise), times √d or a given scale, plus the token-type (segment)
embedding when the spec declares token types."""
from __future__ import annotations

import math

from ..registry import INPUTS


def scaled(spec, x):
    """The embeddings times √d (`embedding.scale: true`) or the given factor."""
    if spec.embedding.scale is False:
        return x
    return x * (math.sqrt(spec.model.width) if spec.embedding.scale is True else spec.embedding.scale)


@INPUTS.register("tokens")
class Tokens:
    def source(self, feeds, prefix: str):
        """The stack's input: token ids (B, S)."""
        return feeds[f"{prefix}input_ids"]

    def embed(self, ref, options, scope: str, ids, token_types):
        spec = ref.spec
        shared = spec.topology != "encoder-decoder" or spec.embedding.shared
        x = scaled(spec, ref.w["embeddings.tokens.weight" if shared else f"{scope}.tokens.weight"][ids])
        if token_types is not None and options.token_types:
            x = x + ref.w[f"{scope}.token_types.weight"][token_types]
        return x
