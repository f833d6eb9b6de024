"""Task heads of Hugging Face checkpoints: sequence classification as tfcompiler's `classifier` head (a
dense layer and tanh over the first token, then a linear map to the labels: BERT's pooler + classifier,
RoBERTa-style `classifier.dense` / `classifier.out_proj`, Funnel's `linear_hidden` / `linear_out`),
token classification (`classifier`, one linear map per token) and question answering (`qa_outputs`:
start and end logits per token). Heads that none expresses are refused by name, or left unplaced, so
that the import fails naming their tensors."""
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


def refuse_last_token_classifier(config: dict) -> None:
    """A decoder's sequence classifier scores the last real token with one linear map."""
    if architecture(config).endswith("ForSequenceClassification"):
        raise TfcError(f"{architecture(config)}: its head scores the last real token with one linear map (`score`); "
                       "tfcompiler's classifier head (a dense layer and tanh before the labels' map, for encoders) "
                       "cannot express it yet")


def sequence_classifier(w: Checkpoint, dense: str, out: str) -> tuple[dict, dict]:
    """The head section (labels: the rows of ``out``'s weight, Hugging Face's num_labels) and its
    weights, from the checkpoint's ``dense`` and ``out`` linear layers."""
    weights = {**linear_weights(w, "pooler.dense", dense, True), **linear_weights(w, "classifier", out, True)}
    return {"kind": "classifier", "labels": labels(weights), "pooling": "first"}, weights


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


def refuse_activation(model: str, setting: str, activation: str) -> None:
    """A classification head whose dense layer is followed by another activation than tanh."""
    if activation != "tanh":
        raise TfcError(f"{model}: its classification head applies {setting}={activation!r} after the "
                       "dense layer; tfcompiler's classifier head applies tanh, so this head cannot be imported yet")


def with_head(spec: dict, weights: dict, head: tuple[dict, dict] | None) -> bool:
    """Put a task head found in the checkpoint (a section and its weights) into the import; whether
    there was one."""
    if head is not None:
        spec["head"] = head[0]
        weights.update(head[1])
    return head is not None
