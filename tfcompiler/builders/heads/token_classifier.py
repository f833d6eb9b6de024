"""Heads over every token of one stack: `token_classifier` (a linear map of each token to `labels` logits,
BERT's token classification) and `span` (extractive question answering: each token's answer-start and
answer-end logits from one linear map; an encoder-decoder's reads the decoder's tokens, as T5's)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...language.kinds import HEADS, HeadKind
from ...language.rules import At
from ...language.schema import option


@dataclass(frozen=True, kw_only=True)
class PerTokenHead(HeadKind):
    """The rule both share: the tokens labelled are one stack's."""

    topologies: ClassVar[tuple[str, ...]] = ("encoder", "decoder")

    def problems(self, spec, where):
        if spec.topology not in self.topologies:
            yield At("kind", f"'{self.kind}' labels the tokens of one stack: it needs topology "
                     f"{', '.join(repr(t) for t in self.topologies[:-1])} or {self.topologies[-1]!r}")


@dataclass(frozen=True, kw_only=True)
class TokenClassifierHead(PerTokenHead):
    """`labels` logits at every token."""

    PAPER = "Devlin et al. 2019 (BERT's token classification)"
    COMPUTES = "`logits` (B, S, labels) = h W + b at every token"
    LOWERING = "`MatMul`, `Add`"

    labels: int = option(2, doc="Outputs per token.", minimum=1)

    def parameters(self, spec) -> int:
        return (spec.model.width + 1) * self.labels


@dataclass(frozen=True, kw_only=True)
class SpanHead(PerTokenHead):
    """Each token's answer-start and answer-end logits."""

    PAPER = "Devlin et al. 2019 (BERT on SQuAD)"
    COMPUTES = "`start_logits`, `end_logits` (B, S): the two columns of h W + b, W (D, 2)"
    LOWERING = "`MatMul`, `Add`, two `Gather`s"
    # T5 answers over its decoder's tokens (its input shifted right)
    topologies: ClassVar[tuple[str, ...]] = ("encoder", "decoder", "encoder-decoder")

    def parameters(self, spec) -> int:
        return (spec.model.width + 1) * 2


def build_token_classifier(ctx, options: TokenClassifierHead, spec, hidden, mask) -> dict:
    with ctx.at("classifier"):
        return {"logits": ctx.linear(hidden, options.labels, "")}


def build_span(ctx, options: SpanHead, spec, hidden, mask) -> dict:
    with ctx.at("span"):
        both = ctx.linear(hidden, 2, "")  # (B, S, 2): each token's start and end logits
        return {name: ctx.op("gather", both, ctx.constant(i, dtype="int64"), axis=2, label=label)
                for i, (name, label) in enumerate((("start_logits", "Start"), ("end_logits", "End")))}


HEADS.register("token_classifier", TokenClassifierHead, build_token_classifier, examples={
    "token_classifier": """
topology: encoder
block: {placement: post}
encoder: {layers: 1}
head: {kind: token_classifier, labels: 5}
""",
})
HEADS.register("span", SpanHead, build_span, examples={
    "span_decoder": """
topology: decoder
decoder: {layers: 1}
head: {kind: span}
""",
    "span_encoder_decoder": """
topology: encoder-decoder
encoder: {layers: 1}
decoder: {layers: 1}
head: {kind: span}
""",
})
