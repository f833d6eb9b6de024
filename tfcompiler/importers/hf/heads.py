"""Task heads of Hugging Face checkpoints.

- Sequence classification as tfcompiler's `classifier` head: an encoder's is a dense layer and an
  activation over the first token, then a linear map to the labels (BERT's pooler + classifier,
  RoBERTa-style `classifier.dense` / `classifier.out_proj`, Funnel's `linear_hidden` / `linear_out`,
  DeBERTa-v2's ContextPooler with its pooler_hidden_act, Nyströmformer's with hidden_act); a decoder's
  is one linear map (`score`) of its last real token (`dense: false`, `pooling: last`).
- Masked language modelling as the `lm` head with a `transform` (a dense layer, an activation, the
  block's LayerNorm) before the vocabulary map tied to the token embedding, plus a bias; Funnel's has
  the map alone.
- Token classification (`classifier`, one linear map per token) and question answering
  (`qa_outputs`: start and end logits per token).

Heads that none expresses are refused by name, or left unplaced, so that the import fails naming
their tensors."""
from __future__ import annotations

import numpy as np

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, linear_weights, norm_weights

# Where each masked-LM layout keeps its transform's dense layer and norm, the vocabulary bias and the
# vocabulary map (a Linear tied to the word embeddings), and the transform's activation (None: the
# config's hidden_act). The first whose dense layer (or, without one, bias) the checkpoint has is read.
MASKED_LM = (
    # BERT, Nyströmformer, DeBERTa-v2 with legacy=true (its default)
    ("cls.predictions.transform.dense", "cls.predictions.transform.LayerNorm", "cls.predictions.bias",
     "cls.predictions.decoder", None),
    # DeBERTa-v2 with legacy=false: the map is the word embeddings themselves
    ("lm_predictions.lm_head.dense", "lm_predictions.lm_head.LayerNorm", "lm_predictions.lm_head.bias", None, None),
    # RoBERTa's head (Longformer): gelu whatever hidden_act says
    ("lm_head.dense", "lm_head.layer_norm", "lm_head.bias", "lm_head.decoder", "gelu"),
    # Funnel: the vocabulary map alone
    (None, None, "lm_head.bias", "lm_head", None))


def architecture(config: dict) -> str:
    """The task model's class name as config.json names it (BertForSequenceClassification), else the model type."""
    return (config.get("architectures") or [config.get("model_type", "model")])[0]


def refuse_multiple_choice(config: dict) -> None:
    """A multiple-choice model reads (batch, choices, length) inputs and compares the choices' scores;
    its weights would import as a one-label classifier that answers another question."""
    if architecture(config).endswith("ForMultipleChoice"):
        raise TfcError(f"{architecture(config)}: multiple-choice heads (one score per choice, inputs of shape "
                       "(batch, choices, length)) are not supported yet")


def head_activation(name: str) -> str:
    """A Hugging Face activation name as the classifier head's `activation` option spells it."""
    return "tanh" if name == "tanh" else activation_kind(name)


def sequence_classifier(w: Checkpoint, dense: str, out: str, activation: str = "tanh") -> tuple[dict, dict]:
    """The head section (labels: the rows of ``out``'s weight, Hugging Face's num_labels) and its
    weights, from the checkpoint's ``dense`` and ``out`` linear layers, ``activation`` between them
    (a Hugging Face name)."""
    weights = {**linear_weights(w, "pooler.dense", dense, True), **linear_weights(w, "classifier", out, True)}
    head = {"kind": "classifier", "labels": labels(weights), "pooling": "first"}
    if head_activation(activation) != "tanh":
        head["activation"] = head_activation(activation)
    return head, weights


def last_token_classifier(w: Checkpoint, config: dict) -> tuple[dict, dict] | None:
    """A decoder's *ForSequenceClassification: ``score`` (no bias: ours is zero) of the last real token.
    Hugging Face reads the rightmost token that is not pad_token_id; the compiled model reads the
    rightmost position its attention_mask marks, right or left padding alike. The two agree when the
    mask marks exactly the tokens that are not padding."""
    if not architecture(config).endswith("ForSequenceClassification") or not w.has("score.weight"):
        return None
    weight = w("score.weight").T
    bias = w("score.bias") if w.has("score.bias") else np.zeros(weight.shape[-1], np.float32)
    weights = {"classifier.weight": weight, "classifier.bias": bias}
    return {"kind": "classifier", "labels": labels(weights), "pooling": "last", "dense": False}, weights


def masked_lm(w: Checkpoint, config: dict) -> tuple[dict, dict] | None:
    """A *ForMaskedLM's head (see MASKED_LM), if the checkpoint has one: the `lm` head with a bias, and
    a transform where the layout has one; the map tied to the token embedding unless
    tie_word_embeddings is false (then its own)."""
    for dense, norm, bias, decoder, activation in MASKED_LM:
        if not w.has(f"{dense}.weight" if dense else bias):
            continue
        head = {"kind": "lm", "tied": decoder is None or config.get("tie_word_embeddings", True), "bias": True}
        if decoder and w.has(f"{decoder}.bias") and f"{decoder}.bias" != bias:
            # the decoder Linear's own bias is what the forward adds; the head's (its tied twin, unless
            # the model was saved untied) is not read
            bias, unread = f"{decoder}.bias", bias
            w.never_read(unread)
        weights = {"lm_head.bias": w(bias)}
        if dense:
            head["transform"] = activation or activation_kind(config["hidden_act"])
            weights.update({**linear_weights(w, "lm_head.transform.dense", dense, True),
                            **norm_weights(w, "lm_head.transform.norm", norm)})
        if decoder and head["tied"]:
            w.tied(f"{decoder}.weight", "embeddings.word_embeddings.weight")
        elif decoder:
            weights["lm_head.weight"] = w(f"{decoder}.weight").T
        return head, weights
    return None


def token_head(w: Checkpoint, config: dict) -> tuple[dict, dict] | None:
    """The per-token head of *ForQuestionAnswering (``qa_outputs``, two logits per token: the answer's
    start and end) or *ForTokenClassification (``classifier``, Llama's ``score``), if the checkpoint
    has one. Token classification is told by the class's name: a decoder's sequence classifier is a
    ``score`` layer too, read at the last token."""
    if w.has("qa_outputs.weight"):
        return {"kind": "span"}, linear_weights(w, "span", "qa_outputs", True)
    if architecture(config).endswith("ForTokenClassification"):
        weights = linear_weights(w, "classifier", "classifier" if w.has("classifier.weight") else "score", True)
        return {"kind": "token_classifier", "labels": labels(weights)}, weights
    return None


def labels(weights: dict) -> int:
    """How many labels a head's classifier.weight (in, labels) maps to: Hugging Face's num_labels."""
    weight = weights["classifier.weight"]
    return int(weight.shape[-1]) if weight.ndim == 2 else 1  # 1: missing, which the import reports


def with_head(spec: dict, weights: dict, head: tuple[dict, dict] | None) -> bool:
    """Put a task head found in the checkpoint (a section and its weights) into the import; whether
    there was one."""
    if head is not None:
        spec["head"] = head[0]
        weights.update(head[1])
    return head is not None
