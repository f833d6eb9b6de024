"""`tfc import-hf`: a Hugging Face model folder (config.json + weights, as ``save_pretrained`` writes
them) -> a tfcompiler spec and a safetensors file under tfcompiler's canonical names.

Each supported ``model_type`` has one function that reads the config into a spec and names, for every
canonical weight, the checkpoint tensor it comes from:

- ``bert`` (BertModel, and task models whose keys start with ``bert.``): post-norm encoder, learned
  positions, token types, embedding LayerNorm, pooler when the checkpoint has one. nn.Linear
  weights are (out, in), so they are transposed to tfcompiler's (in, out).
- ``gpt2`` (GPT2Model / GPT2LMHeadModel, keys under ``transformer.``): pre-norm causal decoder,
  learned positions, final LayerNorm, LM head tied to the token embedding. GPT-2's Conv1D weights
  are already (in, out); its fused ``c_attn`` is split into query, key and value.
- ``llama`` (LlamaForCausalLM, keys under ``model.``): pre-norm RMSNorm decoder, half-split rotary
  positions (default or linear scaling), grouped-query attention, SwiGLU, untied or tied LM head.
- ``t5`` (T5Model, and the body of T5ForConditionalGeneration): pre-norm RMSNorm encoder-decoder,
  bucketed relative bias per stack (layer 0's table, shared), unscaled attention, no biases, ReLU
  or gated-gelu FFN, one shared token embedding. Outputs the decoder's and the encoder's hidden
  states (the LM head's d_model^-0.5 rescaling is not imported yet).
- ``deberta-v2`` (DebertaV2Model, v2 and v3 checkpoints): post-norm encoder with disentangled
  attention (log buckets, relative embeddings with their LayerNorm, share_att_key), embedding
  LayerNorm. DeBERTa zeroes padded positions after its embeddings; those positions' outputs are
  not defined by tfcompiler, every other position matches.
- ``longformer`` (LongformerModel, keys under ``longformer.`` in task models): the BERT layout with
  RoBERTa's positions (numbered from pad_token_id + 1: the table is cut there, and the one token
  type 0's embedding folded into it), sliding-window attention of attention_window / 2 keys each side
  (per layer where they differ), and global attention with its own projections for the positions
  the ``global_attention_mask`` input marks.
- ``reformer`` (ReformerModel / ReformerModelWithLMHead): reversible blocks, LSH attention as trax and
  Hugging Face run it (every bucket in a chunk, look-back rolled across hashing rounds, unscaled
  scores of unit keys, per-head rotations drawn from ``hash_seed`` with torch), local attention layers
  of decoders as ``block_local``, axial position embeddings flattened into a learned table, the LM
  head over both streams.

Weights are read with safetensors; a ``pytorch_model.bin`` needs torch (the ``hf`` extra).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from ..errors import TfcError

_PREFIXES = ("", "bert.", "transformer.", "model.", "longformer.", "reformer.")
_ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                "relu": "relu", "silu": "silu", "swish": "silu"}


class Checkpoint:
    """A checkpoint's tensors, looked up with or without the task model's prefix; every tensor that
    is asked for and missing is remembered, so one error can list them all."""

    def __init__(self, tensors: dict[str, np.ndarray], source: str):
        self.tensors, self.source, self.missing = tensors, source, []

    def __call__(self, key: str) -> np.ndarray:
        for prefix in _PREFIXES:
            if prefix + key in self.tensors:
                return self.tensors[prefix + key].astype(np.float32)
        self.missing.append(key)
        return np.zeros((0,), np.float32)

    def has(self, key: str) -> bool:
        return any(prefix + key in self.tensors for prefix in _PREFIXES)


def _load_tensors(model_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    shards = sorted(model_dir.glob("*.safetensors"))
    if shards:
        tensors = {}
        for shard in shards:
            tensors.update(load_file(str(shard)))
        return tensors
    binary = model_dir / "pytorch_model.bin"
    if not binary.exists():
        raise TfcError(f"{model_dir}: no *.safetensors or pytorch_model.bin weights found")
    try:
        import torch
    except ImportError:
        raise TfcError(f"{binary}: reading .bin checkpoints needs torch: pip install 'tfcompiler[hf]'") from None
    state = torch.load(binary, map_location="cpu", weights_only=True)
    return {k: v.float().numpy() for k, v in state.items()}


def _activation(name: str) -> str:
    if name not in _ACTIVATIONS:
        raise TfcError(f"activation {name!r} is not supported; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]


def _norm_weights(w: Checkpoint, target: str, source: str) -> dict:
    return {f"{target}.weight": w(f"{source}.weight"), f"{target}.bias": w(f"{source}.bias")}


def _linear_weights(w: Checkpoint, target: str, source: str, transpose: bool) -> dict:
    weight = w(f"{source}.weight")
    return {f"{target}.weight": weight.T if transpose else weight, f"{target}.bias": w(f"{source}.bias")}


def _output_and_ffn(w: Checkpoint, ours: str, transpose: bool, output: str, attention_norm: str, up: str, down: str,
                    ffn_norm: str) -> dict:
    """A layer's attention output projection and norm, and its FFN's two linear maps and norm."""
    return {**_linear_weights(w, f"{ours}.attention.output", output, transpose),
            **_norm_weights(w, f"{ours}.attention_norm", attention_norm),
            **_linear_weights(w, f"{ours}.ffn.up", up, transpose),
            **_linear_weights(w, f"{ours}.ffn.down", down, transpose),
            **_norm_weights(w, f"{ours}.ffn_norm", ffn_norm)}


def _bert_layer(w: Checkpoint, ours: str, theirs: str, projection: str) -> dict:
    """A BERT-style post-norm layer (BERT, DeBERTa); ``projection`` spells the q/k/v module names."""
    weights = {}
    for name in ("query", "key", "value"):
        weights.update(_linear_weights(w, f"{ours}.attention.{name}",
                                       f"{theirs}.attention.self.{projection.format(name)}", True))
    weights.update(_output_and_ffn(w, ours, True, f"{theirs}.attention.output.dense",
                                   f"{theirs}.attention.output.LayerNorm", f"{theirs}.intermediate.dense",
                                   f"{theirs}.output.dense", f"{theirs}.output.LayerNorm"))
    return weights


def _ffn(config: dict, activation: str) -> dict:
    """The FFN section: its activation, and Hugging Face's `chunk_size_feed_forward` as `chunk` (how
    many tokens the FFN takes at a time; the same numbers, less memory)."""
    return {"activation": activation, "chunk": config.get("chunk_size_feed_forward") or 0}


def _bert(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise TfcError("BERT with relative position embeddings is not supported yet")
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
                  "ffn": _ffn(config, _activation(config["hidden_act"]))},
        "encoder": {"layers": config["num_hidden_layers"], "final_norm": False},
        "head": {"kind": "pooler" if has_pooler else "none"}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               "embeddings.positions.weight": w("embeddings.position_embeddings.weight"),
               **_norm_weights(w, "embeddings.norm", "embeddings.LayerNorm")}
    if config.get("type_vocab_size", 0):
        weights["embeddings.token_types.weight"] = w("embeddings.token_type_embeddings.weight")
    for i in range(config["num_hidden_layers"]):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        weights.update(_bert_layer(w, ours, theirs, "{}"))
    if has_pooler:
        weights.update(_linear_weights(w, "pooler.dense", "pooler.dense", True))
    return spec, weights


def _gpt2(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "add_cross_attention"):
        if config.get(flag):
            raise TfcError(f"GPT-2 with {flag}=true is not supported yet")
    if not config.get("scale_attn_weights", True):
        raise TfcError("GPT-2 with scale_attn_weights=false is not supported yet")
    width = config["n_embd"]
    eps = config["layer_norm_epsilon"]
    spec = {
        "model": {"width": width, "heads": config["n_head"], "ffn_width": config.get("n_inner") or 4 * width,
                  "vocab_size": config["vocab_size"], "max_length": config["n_positions"]},
        "positional": "learned",
        "block": {"placement": "pre", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": _ffn(config, _activation(config["activation_function"]))},
        "decoder": {"layers": config["n_layer"], "final_norm": True},
        "head": {"kind": "lm", "tied": True}}
    weights = {"embeddings.tokens.weight": w("wte.weight"), "embeddings.positions.weight": w("wpe.weight"),
               **_norm_weights(w, "decoder.final_norm", "ln_f")}
    for i in range(config["n_layer"]):
        ours, theirs = f"decoder.layers.{i}", f"h.{i}"
        qkv_weight, qkv_bias = w(f"{theirs}.attn.c_attn.weight"), w(f"{theirs}.attn.c_attn.bias")
        for part, name in enumerate(("query", "key", "value")):
            columns = slice(part * width, (part + 1) * width)
            weights[f"{ours}.attention.{name}.weight"] = qkv_weight[:, columns] if qkv_weight.size else qkv_weight
            weights[f"{ours}.attention.{name}.bias"] = qkv_bias[columns]
        weights.update(_output_and_ffn(w, ours, False, f"{theirs}.attn.c_proj", f"{theirs}.ln_1",
                                       f"{theirs}.mlp.c_fc", f"{theirs}.mlp.c_proj", f"{theirs}.ln_2"))
    return spec, weights


def _rope_settings(config: dict) -> dict:
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


def _llama(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    bias = bool(config.get("attention_bias", False))
    if bias != bool(config.get("mlp_bias", False)):
        raise TfcError("Llama with attention_bias != mlp_bias is not supported yet")
    if _activation(config.get("hidden_act", "silu")) != "silu":
        raise TfcError(f"Llama with hidden_act {config['hidden_act']!r} is not supported yet")
    width, heads = config["hidden_size"], config["num_attention_heads"]
    tied = bool(config.get("tie_word_embeddings", False))
    spec = {
        "model": {"width": width, "heads": heads, "kv_heads": config.get("num_key_value_heads") or heads,
                  "head_width": config.get("head_dim") or width // heads,
                  "ffn_width": config["intermediate_size"], "vocab_size": config["vocab_size"],
                  "max_length": config["max_position_embeddings"], "bias": bias},
        "positional": _rope_settings(config),
        "block": {"placement": "pre", "norm": {"kind": "rms_norm", "epsilon": config["rms_norm_eps"]},
                  "ffn": _ffn(config, "swiglu")},
        "decoder": {"layers": config["num_hidden_layers"], "final_norm": True},
        "head": {"kind": "lm", "tied": tied}}
    weights = {"embeddings.tokens.weight": w("embed_tokens.weight"),
               "decoder.final_norm.weight": w("norm.weight")}
    if not tied:
        weights["lm_head.weight"] = w("lm_head.weight").T
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


def _t5(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    projection = config.get("feed_forward_proj", "relu")
    activation = {"relu": "relu", "gated-gelu": "geglu_tanh"}.get(projection)
    if activation is None:
        raise TfcError(f"T5 with feed_forward_proj {projection!r} is not supported yet; supported: relu, gated-gelu")
    eps = config["layer_norm_epsilon"]
    layers = {"encoder": config["num_layers"], "decoder": config.get("num_decoder_layers") or config["num_layers"]}
    spec = {
        "model": {"width": config["d_model"], "heads": config["num_heads"], "head_width": config["d_kv"],
                  "ffn_width": config["d_ff"], "vocab_size": config["vocab_size"],
                  "max_length": config.get("n_positions", 512), "bias": False},
        "positional": {"kind": "t5", "num_buckets": config["relative_attention_num_buckets"],
                       "max_distance": config.get("relative_attention_max_distance", 128)},
        "block": {"placement": "pre", "norm": {"kind": "rms_norm", "epsilon": eps},
                  "attention": {"kind": "multi_head", "scale": 1.0}, "ffn": _ffn(config, activation)},
        "encoder": {"layers": layers["encoder"], "final_norm": True},
        "decoder": {"layers": layers["decoder"], "final_norm": True}}
    weights = {"embeddings.tokens.weight": w("shared.weight")}
    attention = {"query": "q", "key": "k", "value": "v", "output": "o"}
    ffn = {"gate": "wi_0", "up": "wi_1", "down": "wo"} if activation == "geglu_tanh" else {"up": "wi", "down": "wo"}
    for stack, count in layers.items():
        weights[f"{stack}.relative_attention_bias.weight"] = \
            w(f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
        weights[f"{stack}.final_norm.weight"] = w(f"{stack}.final_layer_norm.weight")
        sublayers = ["attention"] + (["cross_attention"] if stack == "decoder" else []) + ["ffn"]
        for i in range(count):
            ours, theirs = f"{stack}.layers.{i}", f"{stack}.block.{i}.layer"
            for index, sublayer in enumerate(sublayers):
                weights[f"{ours}.{sublayer}_norm.weight"] = w(f"{theirs}.{index}.layer_norm.weight")
                module = {"attention": "SelfAttention", "cross_attention": "EncDecAttention"}.get(sublayer)
                names = attention if module else ffn
                for target, source in names.items():
                    weights[f"{ours}.{sublayer}.{target}.weight"] = \
                        w(f"{theirs}.{index}.{module or 'DenseReluDense'}.{source}.weight").T
    return spec, weights


def _deberta_v2(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    for flag, wanted in (("conv_kernel_size", 0), ("position_biased_input", False), ("type_vocab_size", 0)):
        if config.get(flag, wanted) != wanted:
            raise TfcError(f"DeBERTa-v2 with {flag}={config[flag]!r} is not supported yet")
    if config.get("embedding_size", config["hidden_size"]) != config["hidden_size"]:
        raise TfcError("DeBERTa-v2 with embedding_size != hidden_size is not supported yet")
    if not config.get("relative_attention") or not config.get("share_att_key", True):
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
                       "max_relative_positions": max_relative if max_relative > 0 else config["max_position_embeddings"],
                       "terms": terms, "norm": norm_rel, "norm_epsilon": eps},
        "embedding": {"norm": "layer_norm", "norm_epsilon": eps},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": eps},
                  "ffn": _ffn(config, _activation(config["hidden_act"]))},
        "encoder": {"layers": layers, "final_norm": False}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               **_norm_weights(w, "embeddings.norm", "embeddings.LayerNorm"),
               "encoder.relative_embeddings.weight": w("encoder.rel_embeddings.weight")}
    if norm_rel:
        weights.update(_norm_weights(w, "encoder.relative_embeddings.norm", "encoder.LayerNorm"))
    for i in range(layers):
        ours, theirs = f"encoder.layers.{i}", f"encoder.layer.{i}"
        weights.update(_bert_layer(w, ours, theirs, "{}_proj"))
    return spec, weights


def _longformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    layers = config["num_hidden_layers"]
    windows = config["attention_window"]
    windows = windows if isinstance(windows, list) else [windows] * layers
    if any(window % 2 for window in windows):
        raise TfcError(f"attention_window must be even (it spans both sides), got {windows}")
    offset = config.get("pad_token_id", 1) + 1  # RoBERTa numbers positions from padding_idx + 1
    spec, weights = _bert({**config, "type_vocab_size": 0,
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
            weights.update(_linear_weights(w, f"encoder.layers.{i}.attention.{name}_global",
                                           f"encoder.layer.{i}.attention.self.{name}_global", True))
    return spec, weights


def _nystromformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """NystromformerModel. Hugging Face takes landmarks only at exactly segment_means_seq_len tokens;
    the compiled model takes any length and equals it at that one. Positions are numbered from 2
    (RoBERTa's convention; the table has max_position_embeddings + 2 rows)."""
    landmarks, length = config["num_landmarks"], config["segment_means_seq_len"]
    if landmarks == length:
        raise TfcError(f"Nystromformer with num_landmarks == segment_means_seq_len ({length}) runs plain attention "
                       "plus the value convolution in Hugging Face; that combination is not supported yet")
    spec, weights = _bert(config, w)
    weights["embeddings.positions.weight"] = w("embeddings.position_embeddings.weight")[2:]
    conv = config.get("conv_kernel_size") or 0
    spec["block"]["attention"] = {"kind": "nystrom", "landmarks": landmarks, "pinv_iterations": 6,
                                  "conv_kernel": conv, "pinv_scale": "global"}
    if conv:
        for i in range(config["num_hidden_layers"]):
            weights[f"encoder.layers.{i}.attention.nystrom.conv.weight"] = \
                w(f"encoder.layer.{i}.attention.self.conv.weight")
    return spec, weights


def _funnel(config: dict, w: Checkpoint) -> tuple[dict, dict]:
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
                  "ffn": _ffn(config, _activation(config["hidden_act"]))},
        "encoder": {"layers": sum(sizes) + decoder, "final_norm": False, "resample": resample}}
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               **_norm_weights(w, "embeddings.norm", "embeddings.layer_norm")}
    theirs = [f"encoder.blocks.{b}.{i}" for b, size in enumerate(sizes) for i in range(size)]
    theirs += [f"decoder.layers.{i}" for i in range(decoder)]
    for i, source in enumerate(theirs):
        ours = f"encoder.layers.{i}"
        weights[f"{ours}.attention.query.weight"] = w(f"{source}.attention.q_head.weight").T
        weights[f"{ours}.attention.query.bias"] = np.zeros(heads * head_width, np.float32)  # Funnel's q_head has none
        for name in ("key", "value"):
            weights.update(_linear_weights(w, f"{ours}.attention.{name}", f"{source}.attention.{name[0]}_head", True))
        relative = f"{ours}.attention.relative"
        for target, bias in (("content_bias", "r_w_bias"), ("position_bias", "r_r_bias"), ("segment_bias", "r_s_bias")):
            weights[f"{relative}.{target}"] = w(f"{source}.attention.{bias}")[:, None, :]
        weights[f"{relative}.segment_embedding"] = w(f"{source}.attention.seg_embed")
        kernel = w(f"{source}.attention.r_kernel")
        weights[f"{relative}.position.weight"] = kernel.reshape(kernel.shape[0], -1)
        weights.update(_output_and_ffn(w, ours, True, f"{source}.attention.post_proj", f"{source}.attention.layer_norm",
                                       f"{source}.ffn.linear_1", f"{source}.ffn.linear_2", f"{source}.ffn.layer_norm"))
    return spec, weights


def _reformer(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """Reformer (ReformerModel / ReformerModelWithLMHead): reversible blocks of LSH attention as the
    authors' trax code runs it (see tfcompiler.build.attention.lsh) and, in decoders, local attention
    (`block_local`: a chunk and the chunks before it, causal) where attn_layers says so, axial position embeddings
    flattened into one learned table, an untied LM head over both streams. Hugging Face draws the
    rotations on every call as torch.manual_seed(hash_seed); torch.randn(heads, head_width, rounds,
    buckets / 2), the same for every layer: they are drawn here once, with torch, into each layer's
    `attention.rotations`."""
    layers, buckets, decoder = config["attn_layers"], config.get("num_buckets"), bool(config.get("is_decoder"))
    problems = []
    if set(layers) - {"lsh", "local"} or "local" in layers and not decoder:
        problems.append(f"attn_layers {layers}: 'lsh' layers, and 'local' ones in a decoder (Hugging Face's "
                        "bidirectional local attention looks back only, wrapping round to the last chunk)")
    if "local" in layers and config.get("local_num_chunks_after", 0) != 0:
        problems.append("local_num_chunks_after must be 0 in a decoder")
    if not isinstance(buckets, int):
        problems.append(f"num_buckets {buckets!r}: only one even number of buckets is supported (Hugging Face sets "
                        "it from the input length when null, and factorises lists)")
    if config.get("hash_seed") is None:
        problems.append("hash_seed is null: Hugging Face draws new rotations on every call; set a hash_seed")
    if (config.get("lsh_num_chunks_before", 1), config.get("lsh_num_chunks_after", 0)) != (1, 0):
        problems.append("lsh_num_chunks_before/after must be 1 / 0 (a chunk and the one before it)")
    if problems:
        raise TfcError("reformer: " + "; ".join(problems))
    try:
        import torch
    except ImportError:
        raise TfcError("reformer: its hashing rotations are drawn by torch from hash_seed: pip install "
                       "'tfcompiler[hf]'") from None
    width, heads, head_width, rounds = (config["hidden_size"], config["num_attention_heads"],
                                        config["attention_head_size"], config["num_hashes"])
    torch.manual_seed(config["hash_seed"])
    rotations = torch.randn((heads, head_width, rounds, buckets // 2), dtype=torch.float32).numpy()
    stack = "decoder" if decoder else "encoder"
    local = {"kind": "block_local", "block": config.get("local_attn_chunk_length", 64),
             "memory_blocks": config.get("local_num_chunks_before", 1)}
    overrides = [{"layers": [i, i], "block": {"attention": local}} for i, kind in enumerate(layers) if kind == "local"]
    spec = {
        "topology": stack,
        "model": {"width": width, "heads": heads, "head_width": head_width, "ffn_width": config["feed_forward_size"],
                  "vocab_size": config["vocab_size"], "max_length": config["max_position_embeddings"]},
        "positional": "learned",
        "block": {"placement": "reversible", "norm": {"kind": "layer_norm", "epsilon": config["layer_norm_eps"]},
                  "attention": {"kind": "lsh", "buckets": buckets, "rounds": rounds,
                                "chunk": config["lsh_attn_chunk_length"], "rotations": "weights",
                                "same_bucket": False, "look_back": "rolled", "scale": 1.0, "key_epsilon": 1e-6},
                  "ffn": _ffn(config, _activation(config["hidden_act"]))},
        stack: {"layers": len(layers), **({"overrides": overrides} if overrides else {})},
        "head": {"kind": "lm", "tied": False, "bias": True} if w.has("lm_head.decoder.weight") else {"kind": "none"}}
    if config.get("axial_pos_embds", True):  # position i·ax1 + j is [w0[i]; w1[j]]
        shape = tuple(config["axial_pos_shape"])
        tables = [w(f"embeddings.position_embeddings.weights.{i}") for i in range(len(shape))]
        positions = np.concatenate([np.broadcast_to(t, shape + t.shape[-1:]) for t in tables], axis=-1).reshape(-1, width)
    else:
        positions = w("embeddings.position_embeddings.embedding.weight")
    weights = {"embeddings.tokens.weight": w("embeddings.word_embeddings.weight"),
               "embeddings.positions.weight": positions[:config["max_position_embeddings"]],
               **_norm_weights(w, f"{stack}.final_norm", "encoder.layer_norm")}
    zeros = np.zeros(heads * head_width, np.float32)
    for i in range(len(layers)):
        ours, theirs = f"{stack}.layers.{i}", f"encoder.layers.{i}"
        projections = ("query_key", "value") if layers[i] == "lsh" else ("query", "key", "value")
        for name in projections:  # Reformer's attention has no biases: ours are zero
            weights[f"{ours}.attention.{name}.weight"] = w(f"{theirs}.attention.self_attention.{name}.weight").T
            weights[f"{ours}.attention.{name}.bias"] = zeros
        weights[f"{ours}.attention.output.weight"] = w(f"{theirs}.attention.output.dense.weight").T
        weights[f"{ours}.attention.output.bias"] = np.zeros(width, np.float32)
        if layers[i] == "lsh":
            weights[f"{ours}.attention.rotations"] = rotations
        weights.update({**_norm_weights(w, f"{ours}.attention_norm", f"{theirs}.attention.layer_norm"),
                        **_norm_weights(w, f"{ours}.ffn_norm", f"{theirs}.feed_forward.layer_norm"),
                        **_linear_weights(w, f"{ours}.ffn.up", f"{theirs}.feed_forward.dense.dense", True),
                        **_linear_weights(w, f"{ours}.ffn.down", f"{theirs}.feed_forward.output.dense", True)})
    if spec["head"]["kind"] == "lm":
        weights.update(_linear_weights(w, "lm_head", "lm_head.decoder", True))
    return spec, weights


IMPORTERS: dict[str, tuple[str, Callable]] = {"bert": ("encoder", _bert), "gpt2": ("decoder", _gpt2),
                                               "llama": ("decoder", _llama), "t5": ("encoder-decoder", _t5),
                                               "deberta-v2": ("encoder", _deberta_v2),
                                               "longformer": ("encoder", _longformer),
                                               "funnel": ("encoder", _funnel),
                                               "nystromformer": ("encoder", _nystromformer),
                                               "reformer": ("decoder", _reformer)}  # or encoder: its config says


def import_hf(model_dir: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``out_dir/spec.yaml`` and ``out_dir/weights.safetensors``; returns their paths."""
    from ..build import build_graph
    from ..build.weights import check_weights, save_weights
    from ..spec import parse_spec

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise TfcError(f"{model_dir / 'config.json'}: cannot read the model config: {e}") from None
    model_type = config.get("model_type")
    if model_type not in IMPORTERS:
        raise TfcError(f"{model_dir}: model_type {model_type!r} is not supported; "
                       f"supported: {', '.join(sorted(IMPORTERS))}")
    topology, importer = IMPORTERS[model_type]
    checkpoint = Checkpoint(_load_tensors(model_dir), str(model_dir))
    body, weights = importer(config, checkpoint)
    if checkpoint.missing:
        raise TfcError(f"{model_dir}: checkpoint lacks tensors the model needs:\n" +
                       "\n".join(f"  {k}" for k in checkpoint.missing))
    name = config.get("_name_or_path") or model_dir.name
    spec_dict = {"tfc": 1, "name": Path(str(name)).name or model_type, "topology": topology, **body}
    text = (f"# Imported by `tfc import-hf` from {model_dir.name} "
            f"({(config.get('architectures') or [model_type])[0]}).\n"
            + yaml.safe_dump(spec_dict, sort_keys=False))
    spec = parse_spec(text, str(out_dir / "spec.yaml"))
    weights = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}
    check_weights(build_graph(spec), weights, str(model_dir))
    out_dir.mkdir(parents=True, exist_ok=True)
    from ..atomic import atomic_path

    with atomic_path(out_dir / "spec.yaml") as temp:
        temp.write_text(text, encoding="utf-8")
    save_weights(weights, str(out_dir / "weights.safetensors"),
                 metadata={"source": str(model_dir.name), "model_type": model_type})
    return out_dir / "spec.yaml", out_dir / "weights.safetensors"
