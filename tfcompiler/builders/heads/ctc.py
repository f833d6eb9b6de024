"""Head `ctc`: every state's scores over the vocabulary for connectionist temporal classification (Graves et al.
2006), one linear map of each frame's state to `vocab` logits, the CTC blank among them; the output `logits`
(B, T', V) and the weights `lm_head.weight` (D, V) and `lm_head.bias`, as Hugging Face's Wav2Vec2ForCTC names
them. The compiled model gives the logits; the CTC decoding (best path: argmax per frame, repeats merged, blanks
dropped; or a beam search with a language model) runs on them outside the graph. A padded frame's logits are
computed like a real one's; the states' mask says which are real (an input that shortens the frames shortens it)."""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import HEADS, HeadKind
from ...language.rules import At
from ...language.schema import option


@dataclass(frozen=True, kw_only=True)
class CtcHead(HeadKind):
    """Logits over the vocabulary (the CTC blank included) at every state of an encoder."""

    PAPER = "Graves et al. 2006 (CTC); Hugging Face's Wav2Vec2ForCTC"
    COMPUTES = "`logits` (B, T', V) = h W + b at every state: per-frame scores for CTC decoding"
    LOWERING = "`MatMul`, `Add`"

    vocab: int = option(0, doc="V, the labels scored at each state, the CTC blank included (Hugging Face's "
                        "vocab_size, its pad token the blank); 0: model.vocab_size.", minimum=0)

    def labels(self, spec) -> int:
        return self.vocab or spec.model.vocab_size

    def parameters(self, spec) -> int:
        return (spec.model.width + 1) * self.labels(spec)

    def problems(self, spec, where):
        if spec.topology != "encoder":
            yield At("kind", f"'ctc' scores every state of an encoder (its frames, aligned by CTC): it needs topology "
                     f"'encoder', got '{spec.topology}'")


def build_ctc(ctx, options: CtcHead, spec, hidden, mask) -> dict:
    return {"logits": ctx.linear(hidden, options.labels(spec), "lm_head")}


HEADS.register("ctc", CtcHead, build_ctc, examples={
    "ctc_over_vectors": """
topology: encoder
input: {kind: vectors, features: 6}
positional: learned
block: {placement: pre}
encoder: {layers: 1}
head: {kind: ctc, vocab: 9}
""",
})
