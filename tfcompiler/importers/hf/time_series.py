"""Hugging Face's time-series encoder-decoders: InformerModel / InformerForPrediction (``informer``) and
TimeSeriesTransformerModel / TimeSeriesTransformerForPrediction (``time_series_transformer``; keys under
``model.`` in the prediction models), reading the `features` input with Hugging Face's preprocessing in the
graph: the scaler (scaling mean or std) over the last context_length observed steps, the lags_sequence, the
static categorical embeddings (`model.embedder`) and static real features, log(1 + |loc|) and log(scale), and
the time features concatenated, all through value_embedding (no bias); the sinusoidal positions ([sin | cos],
the decoder's counted from context_length), layernorm_embedding, post-norm BART layers.

Informer's encoder and decoder self-attention is ProbSparse (attention_type "prob") with Hugging Face's counts
(`counts: hugging_face`: it draws T keys at random on every call; the compiled model measures every key once),
the cross-attention full; its distilling layers (distil) after every encoder layer but the last are the encoder's
`resample: {pooling: distil}`, each BatchNorm's running statistics folded into its convolution. The prediction
models' parameter_projection is the `forecast` head's distribution parameters (Student-T, normal or negative
binomial), its outputs the domain-mapped parameters `params.<name>`.

The compiled model is the forward pass with teacher forcing: it reads future_values and future_time_features
(decoder steps) and needs them; Hugging Face's generate() samples from the distribution step by step, which is
the caller's loop. Without a scaler (scaling None), log(1 + |0|) and log(1) are zero features: their columns of
value_embedding are dropped."""
from __future__ import annotations

import numpy as np

from ...errors import TfcError
from .checkpoint import Checkpoint, activation_kind, linear_weights, norm_weights, output_and_ffn

SCALING = {"mean": "mean", True: "mean", "std": "std", None: "none", False: "none"}
DISTRIBUTIONS = {"student_t": ("df", "loc", "scale"), "normal": ("loc", "scale"),
                 "negative_binomial": ("total_count", "logits")}
BATCH_NORM_EPSILON = 1e-5  # torch.nn.BatchNorm1d's default, which InformerConvLayer keeps


def series_input(config: dict) -> dict:
    """The `features` input section of both stacks (the decoder's adds its first position)."""
    if config.get("scaling") not in SCALING:
        raise TfcError(f"scaling {config.get('scaling')!r} is not supported; expected mean, std or none")
    categorical = config.get("cardinality") if config.get("num_static_categorical_features") else []
    section = {"kind": "features", "features": config["input_size"], "value_axis": config["input_size"] > 1,
               "bias": False, "context_length": config["context_length"], "lags": list(config["lags_sequence"]),
               "scaling": SCALING[config.get("scaling")]}
    time = config.get("num_time_features", 0) + config.get("num_dynamic_real_features", 0)
    if time:
        section.update(time_features=time, time_embedding="concatenated")
    if config.get("num_static_real_features"):
        section["static_real"] = config["num_static_real_features"]
    if categorical:
        section.update(static_categorical=list(categorical), static_dimensions=list(config["embedding_dimension"]))
    return section


def value_embedding(w: Checkpoint, config: dict, stack: str, section: dict) -> np.ndarray:
    """(in, width): value_projection transposed, less the zero columns of an absent scaler's loc and scale."""
    weight = w(f"{stack}.value_embedding.value_projection.weight").T
    if section["scaling"] == "none" and len(weight):
        start = config["input_size"] * len(section["lags"]) + sum(section.get("static_dimensions", [])) + \
            section.get("static_real", 0)
        weight = np.delete(weight, np.s_[start:start + 2 * config["input_size"]], axis=0)
    return weight


def check_positions(w: Checkpoint, stack: str, rows: int, width: int) -> None:
    """embed_positions is a frozen [sin | cos] table: read, and refused if it is not the one the compiled model
    computes (the positional scheme, not a weight)."""
    table = w(f"{stack}.embed_positions.weight")
    angles = np.arange(rows)[:, None] / np.power(10000.0, 2 * np.arange(width // 2)[None, :] / width)
    sinusoids = np.concatenate([np.sin(angles), np.cos(angles)], 1)
    if table.shape == (rows, width) and np.abs(table - sinusoids).max() > 1e-4:
        raise TfcError(f"{stack}.embed_positions.weight is not the sinusoidal table: trained positions are not "
                       "supported")


def attention_section(config: dict) -> dict:
    if config.get("model_type") == "informer" and config.get("attention_type", "prob") == "prob":
        return {"kind": "prob_sparse", "factor": config.get("sampling_factor", 5), "counts": "hugging_face"}
    return {"kind": "multi_head"}


def distil_weights(w: Checkpoint, source: str, target: str) -> dict:
    """InformerConvLayer's Conv1d and eval-mode BatchNorm as one conv: W·g/√(v+ε), (b - m)·g/√(v+ε) + β."""
    gain = w(f"{source}.norm.weight") / np.sqrt(w(f"{source}.norm.running_var") + BATCH_NORM_EPSILON)
    w(f"{source}.norm.num_batches_tracked")  # training bookkeeping
    return {f"{target}.weight": w(f"{source}.downConv.weight") * gain[:, None, None],
            f"{target}.bias": (w(f"{source}.downConv.bias") - w(f"{source}.norm.running_mean")) * gain
            + w(f"{source}.norm.bias")}


def layer_weights(w: Checkpoint, stack: str, i: int) -> dict:
    ours, theirs = f"{stack}.layers.{i}", f"{stack}.layers.{i}"
    weights = {}
    for name, proj in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj")):
        weights.update(linear_weights(w, f"{ours}.attention.{name}", f"{theirs}.self_attn.{proj}", True))
    weights.update(output_and_ffn(w, ours, True, f"{theirs}.self_attn.out_proj", f"{theirs}.self_attn_layer_norm",
                                  f"{theirs}.fc1", f"{theirs}.fc2", f"{theirs}.final_layer_norm"))
    if stack == "decoder":
        for name, proj in (("query", "q_proj"), ("key", "k_proj"), ("value", "v_proj"), ("output", "out_proj")):
            weights.update(linear_weights(w, f"{ours}.cross_attention.{name}", f"{theirs}.encoder_attn.{proj}", True))
        weights.update(norm_weights(w, f"{ours}.cross_attention_norm", f"{theirs}.encoder_attn_layer_norm"))
    return weights


def time_series(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    for key in ("encoder_attention_heads", "encoder_ffn_dim"):
        other = key.replace("encoder", "decoder")
        if config[key] != config[other]:
            raise TfcError(f"{key} {config[key]} != {other} {config[other]}: the stacks share the model's sizes")
    width, layers = config["d_model"], config["encoder_layers"]
    context = config["context_length"] or config["prediction_length"]
    rows = context + config["prediction_length"]
    section = series_input({**config, "context_length": context})
    spec = {
        "model": {"width": width, "heads": config["encoder_attention_heads"], "ffn_width": config["encoder_ffn_dim"],
                  "vocab_size": 1, "max_length": rows},  # no ids: one unread
        "input": section,
        "positional": {"kind": "sinusoidal", "layout": "concatenated"},
        "embedding": {"norm": "layer_norm", "norm_epsilon": 1e-5},
        "block": {"placement": "post", "norm": {"kind": "layer_norm", "epsilon": 1e-5},
                  "attention": attention_section(config),
                  "ffn": {"activation": activation_kind(config["activation_function"])}},
        "encoder": {"layers": layers},
        "decoder": {"layers": config["decoder_layers"], "input": {**section, "first_position": context},
                    "block": {"cross_attention": {"kind": "multi_head"}}},
        "head": {"kind": "none"}}
    distilled = config.get("model_type") == "informer" and config.get("distil", True) and layers > 1
    if distilled:
        spec["encoder"]["resample"] = {"shorten_at": list(range(1, layers)), "pooling": "distil",
                                       "queries_only": False}
    weights = {}
    for i in range(config.get("num_static_categorical_features") and len(section["static_categorical"])):
        weights[f"embeddings.static.{i}.weight"] = w(f"embedder.embedders.{i}.weight")
    for stack, count in (("encoder", layers), ("decoder", config["decoder_layers"])):
        check_positions(w, stack, rows, width)
        weights[f"{stack}.embeddings.values.weight"] = value_embedding(w, config, stack, section)
        weights.update(norm_weights(w, f"{stack}.embeddings.norm", f"{stack}.layernorm_embedding"))
        for i in range(count):
            weights.update(layer_weights(w, stack, i))
    for i in range(1, layers) if distilled else ():
        weights.update(distil_weights(w, f"encoder.conv_layers.{i - 1}", f"encoder.layers.{i}.shorten.conv"))
    if w.has("parameter_projection.proj.0.weight"):
        spec["head"], head = forecast_head(config, w)
        weights.update(head)
    return spec, weights


def forecast_head(config: dict, w: Checkpoint) -> tuple[dict, dict]:
    """parameter_projection: one linear map per distribution parameter, (width, input_size) each."""
    distribution = config.get("distribution_output", "student_t")
    if distribution not in DISTRIBUTIONS:
        raise TfcError(f"distribution_output {distribution!r} is not supported; expected "
                       f"{', '.join(DISTRIBUTIONS)}")
    weights = {}
    for k in range(len(DISTRIBUTIONS[distribution])):
        weights.update(linear_weights(w, f"parameter_projection.proj.{k}", f"parameter_projection.proj.{k}", True))
    return {"kind": "forecast", "distribution": distribution, "outputs": config["input_size"]}, weights
