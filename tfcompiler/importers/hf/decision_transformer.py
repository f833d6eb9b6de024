"""Hugging Face's DecisionTransformerModel (Chen et al. 2021) as a decoder reading `trajectory` with the `action`
head: embed_return / embed_state / embed_action (nn.Linear, transposed to (in, out)), embed_timestep and embed_ln
as they are; the GPT-2 trunk under ``encoder.`` as GPT-2's import reads it (decoders.py), its position table
``encoder.wpe`` reduced to row 0, the one Hugging Face adds to every token (it passes position_ids all zero), as
the input's `position_bias`; ``encoder.wte`` (vocab_size rows, never read: the trunk takes inputs_embeds) is
left out; predict_state, predict_action (with action_tanh) and predict_return as the head's.

`model.max_length` counts steps: n_positions // 3, the steps whose 3 tokens the trunk's table was sized for
(Hugging Face itself reads only its row 0 and so bounds no length)."""
from __future__ import annotations

from .checkpoint import Checkpoint, linear_weights, norm_weights
from .decoders import gpt2_block, gpt2_layers

MODALITIES = ("return", "state", "action")


def decision_transformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    width = config["hidden_size"]
    spec = {
        "model": {"width": width, "heads": config["n_head"], "ffn_width": config.get("n_inner") or 4 * width,
                  "vocab_size": 1, "max_length": config["n_positions"] // 3},  # no token ids: one row, unread
        "input": {"kind": "trajectory", "state_dim": config["state_dim"], "act_dim": config["act_dim"],
                  "max_ep_len": config["max_ep_len"]},
        "positional": "none",
        "block": gpt2_block(config),
        "decoder": {"layers": config["n_layer"], "final_norm": True},
        "head": {"kind": "action", "tanh": bool(config.get("action_tanh", True))}}
    weights = {"embeddings.embed_timestep.weight": w("embed_timestep.weight"),
               **norm_weights(w, "embeddings.embed_ln", "embed_ln"),
               "embeddings.position_bias": first_row(w("encoder.wpe.weight")),
               **norm_weights(w, "decoder.final_norm", "encoder.ln_f"),
               **linear_weights(w, "predict_state", "predict_state", True),
               **linear_weights(w, "predict_action", "predict_action.0", True),
               **linear_weights(w, "predict_return", "predict_return", True)}
    for modality in MODALITIES:
        weights.update(linear_weights(w, f"embeddings.embed_{modality}", f"embed_{modality}", True))
    w.never_read("encoder.wte.weight")
    weights.update(gpt2_layers(config, w, width, prefix="encoder."))
    return spec, weights


def first_row(table):
    """Row 0 of a table (an empty one, a tensor the checkpoint lacks, stays empty: the import names it missing)."""
    return table[0] if table.size else table
