"""Head `ctc` (Graves et al. 2006; Hugging Face's Wav2Vec2ForCTC): logits = h W + b over the vocabulary (or `vocab`
labels) at every state, W the stored (D, V) `lm_head.weight`."""
from __future__ import annotations

from ..registry import HEADS


@HEADS.register("ctc")
class Ctc:
    def outputs(self, ref, head, x, mask):
        return {"logits": ref.linear(x, "lm_head", bias=True)}
