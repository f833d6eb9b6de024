"""Hierarchical models, for ``Reference``: HIBERT (Zhang et al. 2019) and Hi-Transformer (Wu et al.
2021), one sentence at a time through the encoder, the sentences' pooled vectors through the
document stack."""
from __future__ import annotations

import numpy as np

from .attention.multi_head import PLAIN
from .formulas import NEG, pooled_rows


class Hierarchy:
    def hierarchy(self, ids, mask, token_types):
        """HIBERT (Zhang et al. 2019) and Hi-Transformer (Wu et al. 2021), one sentence at a time:
        sentence n of every document is a batch (B, L) through the encoder; its pooled vectors, with
        sentence positions, make the document sequence (B, N, D). Interleaved: document layer i runs
        after encoder layer i and its outputs join every token of their sentence."""
        spec, document = self.spec, self.spec.document
        sentences = range(ids.shape[1])
        real = mask.max(axis=2)
        document_bias = np.where(real != 0, 0.0, NEG)
        tokens = [self.embed("encoder", ids[:, n], None if token_types is None else token_types[:, n])
                  for n in sentences]
        biases = [np.where(mask[:, n] != 0, 0.0, NEG) for n in sentences]
        states = [{} for _ in sentences]

        def encoder_layer(i):
            return [self.layer("encoder", spec.encoder, i, tokens[n], biases[n], states[n]) for n in sentences]

        def vectors(tokens):
            pooled = np.stack([self.pool_sentence(tokens[n], mask[:, n]) for n in sentences], axis=1)
            return self.add_positions(pooled, spec.positional, "document.embeddings", mask.max(2))

        document_state = {}
        if document.interleaved:
            for i in range(document.layers):
                tokens = encoder_layer(i)
                x = self.layer("document", document, i, vectors(tokens), document_bias, document_state)
                tokens = [tokens[n] + x[:, n:n + 1] for n in sentences]
            tokens = [self.final_norm("encoder", spec.encoder, spec.encoder_blocks, t) for t in tokens]
        else:
            for i in range(spec.encoder.layers):
                tokens = encoder_layer(i)
            tokens = [self.final_norm("encoder", spec.encoder, spec.encoder_blocks, t) for t in tokens]
            x = vectors(tokens)
            for i in range(document.layers):
                x = self.layer("document", document, i, x, document_bias, document_state)
        x = self.final_norm("document", document, spec.document_blocks, x)
        return x, real, np.stack(tokens, axis=1)

    def pool_sentence(self, x, mask):
        """(B, L, D) -> (B, D): a sentence's vector; an empty (padded) sentence gives zeros for mean/last."""
        pooling = self.spec.document.pooling
        if pooling == "attention":
            query = np.broadcast_to(self.w["document.pooling.query"], (x.shape[0], 1, x.shape[2]))
            return self.mha(query, x, np.where(mask != 0, 0.0, NEG), False, PLAIN, "document.pooling.attention")[:, 0]
        return pooled_rows(x, mask, pooling)

