"""Task heads of Hugging Face checkpoints that tfcompiler's `classifier` head expresses: a dense layer
and tanh over the first token, then a linear map to the labels (BERT's pooler + classifier,
RoBERTa-style `classifier.dense` / `classifier.out_proj`, Funnel's `linear_hidden` / `linear_out`).
Heads it cannot express are left unplaced, so the import fails naming their tensors."""
from __future__ import annotations

from ...errors import TfcError
from .checkpoint import Checkpoint, linear_weights


def architecture(config: dict) -> str:
    """The task model's class name as config.json names it (BertForSequenceClassification), else the model type."""
    return (config.get("architectures") or [config.get("model_type", "model")])[0]


def refuse_multiple_choice(config: dict) -> None:
    """A multiple-choice model reads (batch, choices, length) inputs and compares the choices' scores;
    its weights would import as a one-label classifier that answers another question."""
    if architecture(config).endswith("ForMultipleChoice"):
        raise TfcError(f"{architecture(config)}: multiple-choice heads (one score per choice, inputs of shape "
                       "(batch, choices, length)) are not supported yet")


def sequence_classifier(w: Checkpoint, dense: str, out: str) -> tuple[dict, dict]:
    """The head section (labels: the rows of ``out``'s weight, Hugging Face's num_labels) and its
    weights, from the checkpoint's ``dense`` and ``out`` linear layers."""
    weights = {**linear_weights(w, "pooler.dense", dense, True), **linear_weights(w, "classifier", out, True)}
    labels = weights["classifier.weight"].shape[-1] if weights["classifier.weight"].ndim == 2 else 1  # 1: missing
    return {"kind": "classifier", "labels": int(labels), "pooling": "first"}, weights


def refuse_activation(model: str, setting: str, activation: str) -> None:
    """A classification head whose dense layer is followed by another activation than tanh."""
    if activation != "tanh":
        raise TfcError(f"{model}: its classification head applies {setting}={activation!r} after the "
                       "dense layer; tfcompiler's classifier head applies tanh, so this head cannot be imported yet")
