"""Input layer `tokens`: token ids looked up in an embedding table (shared by an encoder-decoder's
stacks unless the spec says otherwise), times √d or a given scale, plus the token-type (segment)
embedding when the spec declares token types."""
from __future__ import annotations

import math

from ..registry import INPUTS


@INPUTS.register("tokens")
class Tokens:
    def embed(self, ref, options, scope: str, ids, token_types):
        spec = ref.spec
        shared = spec.topology != "encoder-decoder" or spec.embedding.shared
        x = ref.w["embeddings.tokens.weight" if shared else f"{scope}.tokens.weight"][ids]
        if spec.embedding.scale is not False:
            x = x * (math.sqrt(spec.model.width) if spec.embedding.scale is True else spec.embedding.scale)
        if token_types is not None and options.token_types:
            x = x + ref.w[f"{scope}.token_types.weight"][token_types]
        return x
