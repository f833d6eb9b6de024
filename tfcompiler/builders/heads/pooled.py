"""Heads `pooler` and `classifier`: one vector per row (the first token, the mean of the real tokens or the
last real one) through a dense layer and an activation (BERT's pooler), `pooler_output`; the classifier maps
it (or, without the dense layer, the pooled token itself: GPT-2's and Llama's `score`) to `labels` logits.
Over a causal stack they read the last real token, the only one that has seen the whole input."""
from __future__ import annotations

from dataclasses import dataclass

from ...language.kinds import HEADS, HeadKind
from ...language.model import PLAIN_ACTIVATIONS
from ...language.rules import At
from ...language.schema import option
from ..ffn import activate
from .base import pool


@dataclass(frozen=True, kw_only=True)
class PoolerHead(HeadKind):
    """The states and one pooled vector per row."""

    PAPER = "Devlin et al. 2019 (BERT's pooler)"
    COMPUTES = "`pooler_output` (B, D) = act(W h_pooled + b), beside `last_hidden_state`"
    LOWERING = "`Gather` (first, last without a mask) or a masked `MatMul` (mean, last); `MatMul`, `Add`, `Tanh`"

    pooling: str = option("first", doc="What the pooler reads: the first token ([CLS], BERT), the mean "
                          "of the real tokens, or the last real token (the rightmost position the attention "
                          "mask marks: right or left padding).", choices=("first", "mean", "last"))
    activation: str = option("tanh", doc="The activation after the pooler's dense layer: tanh (BERT) or another "
                             "(DeBERTa-v2's pooler_hidden_act).", choices=("tanh",) + PLAIN_ACTIVATIONS)

    @property
    def dense(self) -> bool:
        """A dense layer and the activation over the pooled token."""
        return True

    def parameters(self, spec) -> int:
        return spec.model.width * (spec.model.width + 1) * self.dense

    def problems(self, spec, where):
        if not spec.bidirectional and self.pooling != "last":
            yield At("pooling", f"'{self.kind}' over a causal stack reads its last real token (pooling: last): "
                     "no other has seen the whole input")


@dataclass(frozen=True, kw_only=True)
class ClassifierHead(PoolerHead):
    """`labels` logits per row, from the pooled vector."""

    PAPER = "Devlin et al. 2019 (BERT's sequence classifier); Radford et al. 2018 (a decoder's last-token score)"
    COMPUTES = "`logits` (B, labels) = W_c pooled + b_c, pooled the pooler's output (or the pooled token itself)"
    LOWERING = "the pooler's, then `MatMul`, `Add`"

    labels: int = option(2, doc="The classifier's outputs.", minimum=1)
    dense: bool = option(True, doc="A dense layer and `activation` over the pooled token before the labels' map "
                         "(BERT's pooler); false: the labels' map reads the pooled token itself (GPT-2's and "
                         "Llama's `score`).")

    def parameters(self, spec) -> int:
        return super().parameters(spec) + (spec.model.width + 1) * self.labels


def pooled(ctx, options: PoolerHead, spec, hidden, mask):
    with ctx.at("pooler"):
        vector = pool(ctx, hidden, options.pooling, mask)
        if options.dense:  # BERT's pooler; a decoder's `score` reads the token itself
            dense = ctx.linear(vector, spec.model.width, "dense")
            vector = ctx.op("tanh", dense) if options.activation == "tanh" else activate(ctx, dense, options.activation)
    return vector


def build_pooler(ctx, options: PoolerHead, spec, hidden, mask) -> dict:
    return {"last_hidden_state": hidden, "pooler_output": pooled(ctx, options, spec, hidden, mask)}


def build_classifier(ctx, options: ClassifierHead, spec, hidden, mask) -> dict:
    vector = pooled(ctx, options, spec, hidden, mask)
    with ctx.at("classifier"):
        return {"logits": ctx.linear(vector, options.labels, "")}


HEADS.register("pooler", PoolerHead, build_pooler, examples={
    "last_token_pooler": """
topology: encoder
block: {placement: pre}
encoder: {layers: 1}
head: {kind: pooler, pooling: last}
""",
})
HEADS.register("classifier", ClassifierHead, build_classifier, examples={
    "mean_pooled_classifier": """
topology: encoder
block: {placement: post}
encoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: mean}
""",
    "gelu_pooler_classifier": """
topology: encoder
block: {placement: post}
encoder: {layers: 1}
head: {kind: classifier, labels: 3, activation: gelu_tanh}
""",
    "decoder_last_token_score": """
topology: decoder
decoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: last, dense: false}
""",
    "encoder_decoder_classifier": """
topology: encoder-decoder
encoder: {layers: 1}
decoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: last}
""",
})
