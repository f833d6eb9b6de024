"""What a positional scheme's reference provides: ``embed`` adds absolute positions to the hidden
states (at the embeddings, or a block's input), ``attend`` changes an attention's score terms
(``Logits``); each does nothing unless the scheme defines it. A scheme whose distances count
tokens across pooling levels (Funnel) sets ``level_positions``, and its stacks run as resampled
stacks even without a `resample` section."""
from __future__ import annotations


class Scheme:
    level_positions = False  # True: positions follow the stack's pooling levels (the stack tracks them)

    def embed(self, ref, options, x, scope: str, mask=None):
        """(B, S, D) hidden states with the positions added; `mask` (B, S) marks the real tokens."""
        return x

    def attend(self, ref, options, logits, site):
        """Change `logits` (q, k, scale, bias, value_term) of one self-attention in place."""
