"""The text models' heads: the states alone (none), BERT's pooler and sequence classifier (or a decoder's
last-token score), the language-model head (tied or its own matrix; a masked LM's dense, activation and norm
first), a token classifier, answer spans, and the Set Transformer's pooling by multi-head attention."""
from __future__ import annotations

import numpy as np

from ..attention.multi_head import PLAIN
from ..formulas import ACTIVATIONS, NEG, pooled_rows
from ..registry import HEADS


@HEADS.register("none")
class States:
    def outputs(self, ref, head, x, mask):
        return {"last_hidden_state": x}


@HEADS.register("lm")
class LanguageModel:
    def outputs(self, ref, head, x, mask):
        if head.transform:  # a masked LM's (BERT's cls.predictions.transform): dense, activation, norm
            dense = ACTIVATIONS[head.transform](ref.linear(x, "lm_head.transform.dense", bias=True))
            x = ref.norm(dense, ref.spec.stacks()[-1][2][-1].norm, "lm_head.transform.norm")
        matrix = ref.w["embeddings.tokens.weight"].T if head.tied else ref.w["lm_head.weight"]
        logits = x @ matrix
        return {"logits": logits + ref.w["lm_head.bias"] if head.bias else logits}


@HEADS.register("pooler")
class Pooler:
    def pooled(self, ref, head, x, mask):
        pooled = pooled_rows(x, np.ones(x.shape[:2]) if mask is None else mask, head.pooling)
        if head.dense:  # BERT's pooler (or DeBERTa's, another activation); without: a decoder's score
            activation = np.tanh if head.activation == "tanh" else ACTIVATIONS[head.activation]
            pooled = activation(ref.linear(pooled, "pooler.dense", bias=True))
        return pooled

    def outputs(self, ref, head, x, mask):
        return {"last_hidden_state": x, "pooler_output": self.pooled(ref, head, x, mask)}


@HEADS.register("classifier")
class Classifier(Pooler):
    def outputs(self, ref, head, x, mask):
        return {"logits": ref.linear(self.pooled(ref, head, x, mask), "classifier", bias=True)}


@HEADS.register("token_classifier")
class TokenClassifier:
    def outputs(self, ref, head, x, mask):
        return {"logits": ref.linear(x, "classifier", bias=True)}


@HEADS.register("span")
class Span:
    def outputs(self, ref, head, x, mask):  # each token's answer-start and answer-end logits
        both = ref.linear(x, "span", bias=True)
        return {"start_logits": both[..., 0], "end_logits": both[..., 1]}


@HEADS.register("set_pool")
class SetPool:
    def outputs(self, ref, head, x, mask):  # Lee et al. 2019: PMA_k(Z) = MAB(S, rFF(Z))
        last = ref.spec.stacks()[-1][2][-1]
        norm, activation = last.norm, last.ffn.activation
        seeds = np.broadcast_to(ref.w["pooler.seeds"], (x.shape[0],) + ref.w["pooler.seeds"].shape[1:])
        keys = ref.ffn(x, activation, "pooler.input.ffn")
        key_bias = None if mask is None else np.where(mask != 0, 0.0, NEG)
        h = ref.norm(seeds + ref.mha(seeds, keys, key_bias, False, PLAIN, "pooler.attention"), norm,
                     "pooler.attention_norm")
        pooled = ref.norm(h + ref.ffn(h, activation, "pooler.output.ffn"), norm, "pooler.output_norm")
        return {"last_hidden_state": x, "pooler_output": pooled}
