"""Decoder-only language models: GPT-2 and Llama (and GPT-2's trunk for Decision Transformer's import)."""
from __future__ import annotations


from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, ffn_section, norm_weights, output_and_ffn
from .heads import last_token_classifier, token_head, with_head


def gpt2(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    width = config["n_embd"]
    spec = {
        "model": {"width": width, "heads": config["n_head"], "ffn_width": config.get("n_inner") or 4 * width,
                  "vocab_size": config["vocab_size"], "max_length": config["n_positions"]},
        "positional": "learned",
        "block": gpt2_block(config),
        "decoder": {"layers": config["n_layer"], "final_norm": True},
        "head": {"kind": "lm", "tied": True}}
    weights = {"embeddings.tokens.weight": w("wte.weight"), "embeddings.positions.weight": w("wpe.weight"),
               **norm_weights(w, "decoder.final_norm", "ln_f")}
    w.tied("lm_head.weight", "wte.weight")
    # GPT2ForTokenClassification / ForQuestionAnswering / ForSequenceClassification
    with_head(spec, weights, token_head(w, config) or last_token_classifier(w, config))
    weights.update(gpt2_layers(config, w, width))
    return spec, weights


def gpt2_block(config: dict) -> dict:
    """The block section of GPT-2's layers (pre-norm LayerNorm), refusing the attention variants not written."""
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if config.get(flag):
            raise TfcError(f"GPT-2 with {flag}=true is not supported yet")
    if not config.get("scale_attn_weights", True):
        raise TfcError("GPT-2 with scale_attn_weights=false is not supported yet")
    return {"placement": "pre", "norm": {"kind": "layer_norm", "epsilon": config["layer_norm_epsilon"]},
            "ffn": ffn_section(config, activation_kind(config["activation_function"]))}


def gpt2_layers(config: dict, w: Checkpoint, width: int, prefix: str = "") -> dict:
    """The decoder layers' weights from GPT-2's `h.N` (under `prefix`: Decision Transformer's trunk is `encoder.`):
    Conv1D weights are already (in, out); the fused ``c_attn`` is split into query, key and value."""
    weights = {}
    for i in range(config["n_layer"]):
        ours, theirs = f"decoder.layers.{i}", f"{prefix}h.{i}"
        qkv_weight, qkv_bias = w(f"{theirs}.attn.c_attn.weight"), w(f"{theirs}.attn.c_attn.bias")
        for part, name in enumerate(("query", "key", "value")):
            columns = slice(part * width, (part + 1) * width)
            weights[f"{ours}.attention.{name}.weight"] = qkv_weight[:, columns] if qkv_weight.size else qkv_weight
            weights[f"{ours}.attention.{name}.bias"] = qkv_bias[columns]
        weights.update(output_and_ffn(w, ours, False, f"{theirs}.attn.c_proj", f"{theirs}.ln_1",
                                       f"{theirs}.mlp.c_fc", f"{theirs}.mlp.c_proj", f"{theirs}.ln_2"))
    return weights


def rope_settings(config: dict) -> dict:
    """transformers 5 keeps RoPE settings in `rope_parameters`; 4.x in rope_theta / rope_scaling."""
    params = config.get("rope_parameters") or {**(config.get("rope_scaling") or {}),
                                               "rope_theta": config.get("rope_theta", 10000.0)}
    kind = params.get("rope_type") or params.get("type") or "default"
    settings = {"kind": "rope", "layout": "half_split", "base": float(params.get("rope_theta", 10000.0))}
    if kind == "linear":
        settings.update(scaling="linear", factor=float(params["factor"]))
    elif kind != "default":
        raise TfcError(f"RoPE type {kind!r} is not supported yet; supported: default, linear")
    return settings


def llama(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    bias = bool(config.get("attention_bias", False))
    if bias != bool(config.get("mlp_bias", False)):
        raise TfcError("Llama with attention_bias != mlp_bias is not supported yet")
    if activation_kind(config.get("hidden_act", "silu")) != "silu":
        raise TfcError(f"Llama with hidden_act {config['hidden_act']!r} is not supported yet")
    width, heads = config["hidden_size"], config["num_attention_heads"]
    tied = bool(config.get("tie_word_embeddings", False))
    spec = {
        "model": {"width": width, "heads": heads, "kv_heads": config.get("num_key_value_heads") or heads,
                  "head_width": config.get("head_dim") or width // heads,
                  "ffn_width": config["intermediate_size"], "vocab_size": config["vocab_size"],
                  "max_length": config["max_position_embeddings"], "bias": bias},
        "positional": rope_settings(config),
        "block": {"placement": "pre", "norm": {"kind": "rms_norm", "epsilon": config["rms_norm_eps"]},
                  "ffn": ffn_section(config, "swiglu")},
        "decoder": {"layers": config["num_hidden_layers"], "final_norm": True},
        "head": {"kind": "lm", "tied": tied}}
    weights = {"embeddings.tokens.weight": w("embed_tokens.weight"),
               "decoder.final_norm.weight": w("norm.weight")}
    # Llama's token and sequence classification and question answering have their head in place of the LM head
    if not with_head(spec, weights, token_head(w, config) or last_token_classifier(w, config)) and not tied:
        weights["lm_head.weight"] = w("lm_head.weight").T
    w.tied("lm_head.weight", "embed_tokens.weight")
    projections = {"attention.query": "self_attn.q_proj", "attention.key": "self_attn.k_proj",
                   "attention.value": "self_attn.v_proj", "attention.output": "self_attn.o_proj",
                   "ffn.gate": "mlp.gate_proj", "ffn.up": "mlp.up_proj", "ffn.down": "mlp.down_proj"}
    for i in range(config["num_hidden_layers"]):
        ours, theirs = f"decoder.layers.{i}", f"layers.{i}"
        for target, source in projections.items():
            weights[f"{ours}.{target}.weight"] = w(f"{theirs}.{source}.weight").T
            if bias:
                weights[f"{ours}.{target}.bias"] = w(f"{theirs}.{source}.bias")
        weights[f"{ours}.attention_norm.weight"] = w(f"{theirs}.input_layernorm.weight")
        weights[f"{ours}.ffn_norm.weight"] = w(f"{theirs}.post_attention_layernorm.weight")
    return spec, weights
