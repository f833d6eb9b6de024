"""Parity with Hugging Face transformers' time-series models: InformerModel and InformerForPrediction (ProbSparse
attention, distilling layers), TimeSeriesTransformerModel and TimeSeriesTransformerForPrediction, from small random
configs (no hub), saved, imported with `tfc import-hf` (the `features` input with the scaler, lags and static
features in the graph, the `forecast` head), compiled and run on onnxruntime against the torch model at fp32:
last_hidden_state, encoder_last_hidden_state, loc, scale, static_features and the distribution parameters
params.<name>, with missing values (past_observed_mask 0, one row with nothing observed: the mean scaler's batch
default) and univariate and multivariate series.

The randomness is fixed so that both compute one function: Hugging Face's InformerProbSparseAttention draws
u_part = min(c·L_Q·⌈ln(1 + L_K)⌉, L_K) = L_K key indices with torch.randint on every call; the test patches
torch.randint, as that module reads it, to return every key once (arange(L_K)), which is what the compiled model
measures (`counts: hugging_face`). Only the forward pass with teacher forcing is compared (future_values given):
generate() samples from the distribution, a loop the caller runs over the compiled forward pass. Every weight is
random (biases, norms, BatchNorm's running statistics too), the frozen sinusoidal tables kept as they are."""
from __future__ import annotations

import numpy as np
import pytest

from test_parity_hf import TOLERANCE, import_and_compile, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

BASE = dict(prediction_length=4, context_length=9, lags_sequence=[1, 2, 4], num_time_features=2, d_model=16,
            encoder_layers=3, decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
            encoder_ffn_dim=24, decoder_ffn_dim=24, activation_function="gelu")


@pytest.fixture(autouse=True)
def every_key_once(monkeypatch):
    """torch.randint(0, n, (n,)) inside the Informer module returns arange(n): each key sampled once."""
    from transformers.models.informer import modeling_informer

    def randint(low, high, size, **kwargs):
        assert (low, tuple(size)) == (0, (high,)), "Hugging Face's draw of keys changed: re-read it"
        return torch.arange(high)
    monkeypatch.setattr(modeling_informer.torch, "randint", randint, raising=True)


def model_of(model_class: str, seed: int = 3, **options):
    family = "Informer" if model_class.startswith("Informer") else "TimeSeriesTransformer"
    config = getattr(transformers, f"{family}Config")(**{**BASE, **options})
    model = randomise(getattr(transformers, model_class)(config), seed)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "create_weight"):  # the frozen sinusoidal positions
                module.weight.copy_(module.create_weight())
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(0.3 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return model.eval()


def feeds_of(config, batch: int = 3, seed: int = 0, missing: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    past = config.context_length + max(config.lags_sequence)
    values = (lambda t: (batch, t)) if config.input_size == 1 else (lambda t: (batch, t, config.input_size))
    time = config.num_time_features + config.num_dynamic_real_features  # Hugging Face reads both in one input
    feeds = {"past_values": 3 + 2 * rng.standard_normal(values(past)),
             "past_time_features": rng.standard_normal((batch, past, time)),
             "past_observed_mask": np.ones(values(past)),
             "future_values": 3 + 2 * rng.standard_normal(values(config.prediction_length)),
             "future_time_features": rng.standard_normal((batch, config.prediction_length, time))}
    if missing:  # values missing at random, and a row with nothing observed in its context
        feeds["past_observed_mask"] = (rng.random(values(past)) > 0.3).astype(float)
        feeds["past_observed_mask"][-1, -config.context_length:] = 0
        feeds["past_values"] = feeds["past_values"] * feeds["past_observed_mask"]
    if config.distribution_output == "negative_binomial":  # counts: its loss (computed with future_values) asks it
        feeds["past_values"], feeds["future_values"] = (np.round(np.abs(feeds[k])) for k in ("past_values",
                                                                                             "future_values"))
    if config.num_static_real_features:
        feeds["static_real_features"] = rng.standard_normal((batch, config.num_static_real_features))
    if config.num_static_categorical_features:
        feeds["static_categorical_features"] = np.stack([rng.integers(0, c, batch) for c in config.cardinality], 1)
    return {k: v.astype(np.int64 if k == "static_categorical_features" else np.float32) for k, v in feeds.items()}


def compare(model, session, feeds, names):
    with torch.no_grad():
        want = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    ours = [i.name for i in session.get_inputs()]
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {k: feeds[k] for k in ours})))
    wanted = {name: getattr(want, name).numpy() for name in names if name != "params"}
    if "params" in names:
        kinds = {"student_t": ("df", "loc", "scale"), "normal": ("loc", "scale"),
                 "negative_binomial": ("total_count", "logits")}[model.config.distribution_output]
        wanted.update({f"params.{kind}": value.numpy() for kind, value in zip(kinds, want.params)})
    assert sorted(got) == sorted(wanted)
    for name, value in wanted.items():
        assert got[name].shape == value.shape, name
        error = float(np.abs(got[name] - value).max())
        assert error <= TOLERANCE * max(1.0, float(np.abs(value).max())), f"{name}: {error}"


MODEL_OUTPUTS = ("last_hidden_state", "encoder_last_hidden_state", "loc", "scale", "static_features")


@pytest.mark.parametrize("model_class, options", [
    ("InformerModel", {}),  # sampling_factor 5: every query of these lengths attends
    ("InformerModel", dict(prediction_length=9, sampling_factor=1)),  # 3 of 9 (decoder: causal) queries attend
    ("InformerModel", dict(input_size=2, scaling="std", num_static_real_features=2, num_static_categorical_features=2,
                           cardinality=[3, 5], embedding_dimension=[2, 3], sampling_factor=2)),
    ("InformerModel", dict(attention_type="full", distil=False, num_dynamic_real_features=1)),
    ("TimeSeriesTransformerModel", dict(num_static_categorical_features=1, cardinality=[4], scaling="std")),
    ("TimeSeriesTransformerModel", dict(input_size=3, encoder_layers=1))])
def test_models_match_transformers(tmp_path, model_class, options):
    model = model_of(model_class, **options)
    session = import_and_compile(model, tmp_path)
    for seed, missing in ((0, True), (1, False)):
        compare(model, session, feeds_of(model.config, seed=seed, missing=missing), MODEL_OUTPUTS)


@pytest.mark.parametrize("model_class, options", [
    ("InformerForPrediction", dict(distribution_output="student_t")),
    ("InformerForPrediction", dict(distribution_output="normal", input_size=2)),
    ("TimeSeriesTransformerForPrediction", dict(distribution_output="negative_binomial", scaling=None))])
def test_prediction_models_match_transformers(tmp_path, model_class, options):
    """The distribution's parameters after their domain maps (squareplus, Student-T's df + 2), as `params.<name>`."""
    model = model_of(model_class, **options)
    session = import_and_compile(model, tmp_path)
    outputs = ("params", "loc", "scale", "static_features") if model.config.scaling else ("params",)
    compare(model, session, feeds_of(model.config, batch=2, seed=4), outputs)


@pytest.mark.parametrize("options, refused", [
    (dict(decoder_ffn_dim=32), "encoder_ffn_dim 24 != decoder_ffn_dim 32"),
    (dict(decoder_attention_heads=4), "encoder_attention_heads 2 != decoder_attention_heads 4"),
    (dict(trained_positions=True), "decoder.embed_positions.weight is not the sinusoidal table")])
def test_import_refuses_by_name(tmp_path, capsys, options, refused):
    from tfcompiler.cli import main

    model = model_of("InformerModel", **{k: v for k, v in options.items() if k != "trained_positions"})
    if options.get("trained_positions"):
        with torch.no_grad():
            model.decoder.embed_positions.weight.add_(0.01)
    model.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert refused in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()
