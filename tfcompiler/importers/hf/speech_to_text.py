"""Hugging Face Speech2Text (Speech2TextModel, Speech2TextForConditionalGeneration; keys under ``model.``): an
encoder-decoder whose encoder reads `frames` (log-mel features through the Conv1dSubsampler: a Conv1d of stride 2
and padding k // 2 per conv_kernel_sizes entry, each followed by a GLU, as `subsampler: conv1d_glu`) and whose
decoder reads tokens; pre-norm layers (self_attn_layer_norm, encoder_attn_layer_norm, final_layer_norm), each
stack's final layer_norm, embeddings times √d_model with scale_embedding.

Positions are fairseq's sinusoids ([sin | cos], frequencies 1/10000^(i/(d/2 - 1))) numbered from padding_idx + 1:
`positional: {kind: sinusoidal, layout: concatenated, spacing: fairseq, offset: pad_token_id + 1}`. Hugging Face
numbers only non-pad tokens (a pad token id in the decoder's input gets a zero row and does not advance the count),
and padded frames get a zero row; those positions' states are not defined by tfcompiler (they are masked), every
real one matches. max_length is the larger of max_source_positions and max_target_positions (Hugging Face grows
its table past both).

Speech2TextForConditionalGeneration's lm_head (no bias) is the `lm` head, tied to the decoder's token embedding
where tie_word_embeddings; Speech2TextModel has no head (outputs: the decoder's last_hidden_state and
encoder_last_hidden_state). Encoder and decoder with different FFN widths or head counts are refused by name
(the spec has one of each)."""
from __future__ import annotations

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, linear_weights, norm_weights

ATTENTION = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "output": "out_proj"}


def speech_to_text(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    for ours in ("ffn_dim", "attention_heads"):
        if config[f"encoder_{ours}"] != config[f"decoder_{ours}"]:
            raise TfcError(f"Speech2Text with encoder_{ours} {config[f'encoder_{ours}']} != decoder_{ours} "
                           f"{config[f'decoder_{ours}']} is not supported yet (a spec has one of each)")
    pad = config.get("pad_token_id")
    if not isinstance(pad, int) or pad < 1:
        raise TfcError(f"Speech2Text with pad_token_id {pad!r}: Hugging Face then numbers no real frame's position "
                       "(its encoder reads the padding mask as ids, 1 for padding); an id >= 1 is supported")
    kernels = list(config["conv_kernel_sizes"])
    if len(kernels) != config["num_conv_layers"]:
        raise TfcError(f"Speech2Text with {config['num_conv_layers']} conv layers and conv_kernel_sizes {kernels}")
    if any(k % 2 == 0 for k in kernels):  # its conv leaves (n + 2·(k // 2) - k) // 2 + 1 states
        raise TfcError(f"Speech2Text with even conv_kernel_sizes {kernels} is not supported: Hugging Face masks its "
                       "states by (n - 1) // 2 + 1 per layer, which is the convolutions' length for odd kernels only")
    width = config["d_model"]
    layers = {"encoder": config["encoder_layers"], "decoder": config["decoder_layers"]}
    spec = {
        "model": {"width": width, "heads": config["encoder_attention_heads"], "ffn_width": config["encoder_ffn_dim"],
                  "vocab_size": config["vocab_size"],
                  "max_length": max(config["max_source_positions"], config["max_target_positions"])},
        "input": {"kind": "frames", "subsampler": "conv1d_glu",
                  "features": config["input_feat_per_channel"] * config.get("input_channels", 1),
                  "kernels": kernels, "channels": config["conv_channels"]},
        "positional": {"kind": "sinusoidal", "layout": "concatenated", "spacing": "fairseq", "offset": pad + 1},
        "embedding": {"scale": bool(config.get("scale_embedding", True))},
        "block": {"placement": "pre", "norm": {"kind": "layer_norm", "epsilon": 1e-5},
                  "ffn": {"activation": activation_kind(config["activation_function"])}},
        "encoder": {"layers": layers["encoder"], "final_norm": True},
        "decoder": {"layers": layers["decoder"], "final_norm": True, "input": {"kind": "tokens"}},
        "head": {"kind": "none"}}
    weights = {"embeddings.tokens.weight": w("decoder.embed_tokens.weight")}
    for i in range(len(kernels)):
        weights.update(linear_weights(w, f"encoder.embeddings.conv.{i}", f"encoder.conv.conv_layers.{i}", False))
    for stack, count in layers.items():
        weights.update(norm_weights(w, f"{stack}.final_norm", f"{stack}.layer_norm"))
        sublayers = {"attention": "self_attn"}
        if stack == "decoder":
            sublayers["cross_attention"] = "encoder_attn"
        for i in range(count):
            ours, theirs = f"{stack}.layers.{i}", f"{stack}.layers.{i}"
            for sublayer, module in sublayers.items():
                for target, source in ATTENTION.items():
                    weights.update(linear_weights(w, f"{ours}.{sublayer}.{target}", f"{theirs}.{module}.{source}",
                                                  True))
                weights.update(norm_weights(w, f"{ours}.{sublayer}_norm", f"{theirs}.{module}_layer_norm"))
            weights.update(linear_weights(w, f"{ours}.ffn.up", f"{theirs}.fc1", True))
            weights.update(linear_weights(w, f"{ours}.ffn.down", f"{theirs}.fc2", True))
            weights.update(norm_weights(w, f"{ours}.ffn_norm", f"{theirs}.final_layer_norm"))
    if w.has("lm_head.weight") or "Speech2TextForConditionalGeneration" in (config.get("architectures") or []):
        tied = config.get("tie_word_embeddings", True)
        spec["head"] = {"kind": "lm", "tied": tied}
        if tied:
            w.tied("lm_head.weight", "decoder.embed_tokens.weight")
        else:
            weights["lm_head.weight"] = w("lm_head.weight").T
    return spec, weights
