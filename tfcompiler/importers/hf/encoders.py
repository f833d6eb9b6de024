"""BERT-family encoders: BERT, DeBERTa-v2/v3, Longformer, Nyströmformer and Funnel (see the package's
docstring for what each maps to)."""
from __future__ import annotations

import numpy as np

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, ffn_section, linear_weights, norm_weights, output_and_ffn
from .heads import masked_lm, sequence_classifier, token_head, with_head


def bert_layer(w: Checkpoint, ours: str, theirs: str, projection: str) -> dict:
    """A BERT-style post-norm layer (BERT, DeBERTa); ``projection`` spells the q/k/v module names."""
    weights = {}
    for name in ("query", "key", "value"):
        weights.update(linear_weights(w, f"{ours}.attention.{name}",
                                       f"{theirs}.attention.self.{projection.format(name)}", True))
    weights.update(output_and_ffn(w, ours, True, f"{theirs}.attention.output.dense",
                                   f"{theirs}.attention.output.LayerNorm", f"{theirs}.intermediate.dense",
                                   f"{theirs}.output.dense", f"{theirs}.output.LayerNorm"))
    return weights


def bert(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise TfcError("BERT with relative position embeddings is not supported yet")
    if config.get("is_decoder"):  # BertLMHeadModel: its LM head would import over a bidirectional encoder
        raise TfcError("BERT with is_decoder=true (causal attention: BertLMHeadModel) is not supported yet")
    eps = config["layer_norm_eps"]
    has_pooler = w.has("pooler.dense.weight")
    spec = {
        "model": {"width": config["hidden_size"], "heads": config["num_attention_heads"],
                  "ffn_width": config["intermediate_size"], "vocab_size": config["vocab_size"],
                  "max_length": config["max_position_embeddings"]},
        "input": {"kind": "tokens", "token_types": config.get("type_vocab_size", 0)},
        "positional": "learned",
        "embedding": {"norm": "layer_norm", "norm_epsilon": eps},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": ffn_section(config, activation_kind(config["hidden_act"]))},
        "encoder": {"layers": config["num_hidden_layers"], "final_norm": False},
        "head": {"kind": "pooler" if has_pooler else "none"}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               "embeddings.positions.weight": w("embeddings.position_embeddings.weight"),
               **norm_weights(w, "embeddings.norm", "embeddings.LayerNorm")}
    if config.get("type_vocab_size", 0):
        weights["embeddings.token_types.weight"] = w("embeddings.token_type_embeddings.weight")
    for i in range(config["num_hidden_layers"]):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        weights.update(bert_layer(w, ours, theirs, "{}"))
    if has_pooler and w.has("classifier.weight"):  # BertForSequenceClassification: pooler, then classifier
        spec["head"], head = sequence_classifier(w, "pooler.dense", "classifier")
        weights.update(head)
    elif has_pooler:
        weights.update(linear_weights(w, "pooler.dense", "pooler.dense", True))
    else:  # also Nyströmformer's and Longformer's (their importers start from this one)
        with_head(spec, weights, token_head(w, config) or masked_lm(w, config))
    return spec, weights


def deberta_v2(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    for flag, wanted in (("conv_kernel_size", 0), ("position_biased_input", False), ("type_vocab_size", 0)):
        if config.get(flag, wanted) != wanted:
            raise TfcError(f"DeBERTa-v2 with {flag}={config[flag]!r} is not supported yet")
    if config.get("embedding_size", config["hidden_size"]) != config["hidden_size"]:
        raise TfcError("DeBERTa-v2 with embedding_size != hidden_size is not supported yet")
    # transformers reads a missing share_att_key as false (separate pos_key_proj / pos_query_proj)
    if not config.get("relative_attention") or not config.get("share_att_key", False):
        raise TfcError("DeBERTa-v2 is supported with relative_attention=true and share_att_key=true")
    eps, layers = config["layer_norm_eps"], config["num_hidden_layers"]
    norm_rel = "layer_norm" in [x.strip() for x in str(config.get("norm_rel_ebd", "none")).split("|")]
    max_relative = config.get("max_relative_positions", -1)
    terms = [t for t in ("c2p", "p2c") if t in (config.get("pos_att_type") or [])]
    spec = {
        "model": {"width": config["hidden_size"], "heads": config["num_attention_heads"],
                  "ffn_width": config["intermediate_size"], "vocab_size": config["vocab_size"],
                  "max_length": config["max_position_embeddings"]},
        "positional": {"kind": "deberta", "position_buckets": max(config.get("position_buckets", -1), 0),
                       "max_relative_positions": max_relative if max_relative > 0
                       else config["max_position_embeddings"],
                       "terms": terms, "norm": norm_rel, "norm_epsilon": eps},
        "embedding": {"norm": "layer_norm", "norm_epsilon": eps},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": ffn_section(config, activation_kind(config["hidden_act"]))},
        "encoder": {"layers": layers, "final_norm": False}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               **norm_weights(w, "embeddings.norm", "embeddings.LayerNorm"),
               "encoder.relative_embeddings.weight": w("encoder.rel_embeddings.weight")}
    if norm_rel:
        weights.update(norm_weights(w, "encoder.relative_embeddings.norm", "encoder.LayerNorm"))
    for i in range(layers):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        weights.update(bert_layer(w, ours, theirs, "{}_proj"))
    if w.has("pooler.dense.weight") and w.has("classifier.weight"):  # ContextPooler: first token, dense, activation
        if config.get("pooler_hidden_size", config["hidden_size"]) != config["hidden_size"]:
            raise TfcError("DeBERTa-v2 with pooler_hidden_size != hidden_size is not supported yet")
        spec["head"], head = sequence_classifier(w, "pooler.dense", "classifier",
                                                 config.get("pooler_hidden_act", "gelu"))
        weights.update(head)
    else:
        with_head(spec, weights, token_head(w, config) or masked_lm(w, config))
    return spec, weights


def longformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    layers = config["num_hidden_layers"]
    windows = config["attention_window"]
    windows = windows if isinstance(windows, list) else [windows] * layers
    if any(window % 2 for window in windows):
        raise TfcError(f"attention_window must be even (it spans both sides), got {windows}")
    offset = config.get("pad_token_id", 1) + 1  # RoBERTa numbers positions from padding_idx + 1
    spec, weights = bert({**config, "type_vocab_size": 0,
                           "max_position_embeddings": config["max_position_embeddings"] - offset}, w)
    # positions p >= offset only; token type 0 (Longformer's only one in practice, and the default)
    # adds the same row to every token
    weights["embeddings.positions.weight"] = (w("embeddings.position_embeddings.weight")[offset:]
                                              + w("embeddings.token_type_embeddings.weight")[0])

    def attention(window):
        return {"kind": "longformer", "window": window // 2, "global_tokens": 0, "global_input": True}

    spec["block"]["attention"] = attention(windows[0])
    overrides = [{"layers": [i, i], "block": {"attention": attention(window)}}
                 for i, window in enumerate(windows) if window != windows[0]]
    if overrides:
        spec["encoder"]["overrides"] = overrides
    for i in range(layers):
        for name in ("query", "key", "value"):
            weights.update(linear_weights(w, f"encoder.layers.{i}.attention.{name}_global",
                                           f"encoder.layer.{i}.attention.self.{name}_global", True))
    if w.has("classifier.out_proj.weight"):  # LongformerClassificationHead: first token, dense, tanh, out_proj
        spec["head"], head = sequence_classifier(w, "classifier.dense", "classifier.out_proj")
        weights.update(head)
    return spec, weights


def nystromformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """NystromformerModel. Hugging Face takes landmarks only at exactly segment_means_seq_len tokens;
    the compiled model takes any length and equals it at that one. Positions are numbered from 2
    (RoBERTa's convention; the table has max_position_embeddings + 2 rows). Its Z₀ scale spans the
    batch (pinv_scale: global; its per-head option, inv_coeff_init_option, fails in transformers
    itself) and it masks padding only as keys of the last softmax (mask_padding: keys): padded
    batches equal it too."""
    landmarks, length = config["num_landmarks"], config["segment_means_seq_len"]
    if landmarks == length:
        raise TfcError(f"Nystromformer with num_landmarks == segment_means_seq_len ({length}) runs plain attention "
                       "plus the value convolution in Hugging Face; that combination is not supported yet")
    spec, weights = bert(config, w)
    weights["embeddings.positions.weight"] = w("embeddings.position_embeddings.weight")[2:]
    if w.has("classifier.out_proj.weight"):  # its head: first token, dense, hidden_act, out_proj
        spec["head"], head = sequence_classifier(w, "classifier.dense", "classifier.out_proj", config["hidden_act"])
        weights.update(head)
    conv = config.get("conv_kernel_size") or 0
    spec["block"]["attention"] = {"kind": "nystrom", "landmarks": landmarks, "pinv_iterations": 6,
                                  "conv_kernel": conv, "pinv_scale": "global", "mask_padding": "keys"}
    if conv:
        for i in range(config["num_hidden_layers"]):
            weights[f"encoder.layers.{i}.attention.nystrom.conv.weight"] = \
                w(f"encoder.layer.{i}.attention.self.conv.weight")
    return spec, weights


def funnel(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """FunnelModel (with its upsampling decoder) or FunnelBaseModel (the pooled encoder alone)."""
    for flag, wanted in (("attention_type", "relative_shift"), ("pooling_type", "mean"), ("pool_q_only", True)):
        if config.get(flag, wanted) != wanted:
            raise TfcError(f"Funnel with {flag}={config[flag]!r} is not supported yet")
    sizes = config["block_sizes"]
    if any(repeat != 1 for repeat in config.get("block_repeats") or [1] * len(sizes)):
        raise TfcError(f"Funnel with block_repeats={config['block_repeats']} is not supported yet")
    eps, heads, head_width = config["layer_norm_eps"], config["n_head"], config["d_head"]
    decoder = config.get("num_decoder_layers", 0) if w.has("decoder.layers.0.attention.q_head.weight") else 0
    starts = [sum(sizes[:k]) for k in range(1, len(sizes))]
    resample = {"shorten_at": starts, "stride": 2, "separate_cls": config.get("separate_cls", True),
                "truncate": config.get("truncate_seq", True)}
    if decoder:
        resample["upsample_at"] = sum(sizes)
    spec = {
        "model": {"width": config["d_model"], "heads": heads, "head_width": head_width, "ffn_width": config["d_inner"],
                  "vocab_size": config["vocab_size"], "max_length": 512},
        "positional": {"kind": "funnel"},
        "embedding": {"norm": "layer_norm", "norm_epsilon": eps},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": ffn_section(config, activation_kind(config["hidden_act"]))},
        "encoder": {"layers": sum(sizes) + decoder, "final_norm": False, "resample": resample}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               **norm_weights(w, "embeddings.norm", "embeddings.layer_norm")}
    theirs = [f"encoder.blocks.{b}.{i}" for b, size in enumerate(sizes) for i in range(size)]
    theirs += [f"decoder.layers.{i}" for i in range(decoder)]
    for i, source in enumerate(theirs):
        ours = f"encoder.layers.{i}"
        weights[f"{ours}.attention.query.weight"] = w(f"{source}.attention.q_head.weight").T
        weights[f"{ours}.attention.query.bias"] = np.zeros(heads * head_width, np.float32)  # Funnel's q_head has none
        for name in ("key", "value"):
            weights.update(linear_weights(w, f"{ours}.attention.{name}", f"{source}.attention.{name[0]}_head", True))
        relative = f"{ours}.attention.relative"
        for target, bias in (("content_bias", "r_w_bias"), ("position_bias", "r_r_bias"), ("segment_bias", "r_s_bias")):
            weights[f"{relative}.{target}"] = w(f"{source}.attention.{bias}")[:, None, :]
        weights[f"{relative}.segment_embedding"] = w(f"{source}.attention.seg_embed")
        kernel = w(f"{source}.attention.r_kernel")
        weights[f"{relative}.position.weight"] = kernel.reshape(kernel.shape[0], -1)
        weights.update(output_and_ffn(w, ours, True, f"{source}.attention.post_proj", f"{source}.attention.layer_norm",
                                       f"{source}.ffn.linear_1", f"{source}.ffn.linear_2", f"{source}.ffn.layer_norm"))
    if w.has("classifier.linear_out.weight"):  # FunnelClassificationHead: first token, dense, tanh, linear_out
        spec["head"], head = sequence_classifier(w, "classifier.linear_hidden", "classifier.linear_out")
        weights.update(head)
    else:
        with_head(spec, weights, token_head(w, config) or masked_lm(w, config))
    return spec, weights
