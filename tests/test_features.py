"""The `features` input's rules and run-time checks: located compile-time errors for time features without their
count, calendar fields past the tables, lags without a context, univariate values of several features, and a
distil (Informer's distilling layer) with too few steps or where it does not apply; Model.run names a past series
of the wrong length, a non-finite value, an observed mask of other than 0s and 1s, a calendar field or a static
category outside its table."""
from __future__ import annotations

import numpy as np
import pytest

from test_errors import check_fails
from tfc_runtime import Model
from tfcompiler.compiler import compile_spec
from tfcompiler.language import parse_spec

SPEC = """
tfc: 1
name: informer
topology: encoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 16}
input: {kind: features, features: 2, time_features: 2}
positional: sinusoidal
block: {placement: post}
encoder: {layers: 3, resample: {shorten_at: [1, 2], pooling: distil, queries_only: false}}
"""


@pytest.mark.parametrize("old, new, expected", [
    ("time_features: 2}", "time_embedding: fixed}", ("spec.yaml:6:", "input.time_embedding: time_embedding 'fixed' "
                                                     "embeds the time features: set time_features, their count")),
    ("time_features: 2}", "time_features: 6, time_embedding: learned}", ("input.time_features: calendar tables "
                                                                          "cover 5 fields",)),
    ("time_features: 2}", "lags: [1, 2]}", ("input.lags: lagged values reach back before the context: set "
                                            "context_length",)),
    ("features: 2,", "features: 2, value_axis: false,", ("input.value_axis: values without their own axis are one "
                                                         "per step: features must be 1, got 2",)),
    ("max_length: 16", "max_length: 2", ("spec.yaml:9:", "encoder.resample.shorten_at: the distil before layer 2 "
                                         "gets 1 step(s) of the longest input (model.max_length after 1 distil(s)): "
                                         "at least 2 are needed to halve")),
    ("time_features: 2}", "time_features: 2, context_length: 2}", ("the distil before layer 2 gets 1 step(s)",
                                                                   "input.context_length")),
    ("queries_only: false", "queries_only: true", ("encoder.resample.pooling: distil pools an encoder's steps by 2 "
                                                   "before the layers of shorten_at: set queries_only: false",)),
    ("queries_only: false}", "queries_only: false, stride: 3}", ("and leave out stride",)),
])
def test_bad_features_get_a_located_error(tmp_path, capsys, old, new, expected):
    assert old in SPEC
    check_fails(tmp_path, capsys, SPEC.replace(old, new), *expected)


SEQ2SEQ = """
tfc: 1
name: series
topology: encoder-decoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 16}
input: {kind: features, context_length: 6, lags: [1, 2], scaling: mean}
encoder: {layers: 1}
decoder: {layers: 1, input: {kind: features, context_length: 6, lags: [1, 2], scaling: mean, first_position: 6}}
"""


@pytest.mark.parametrize("old, new, expected", [
    ("lags: [1, 2], scaling: mean, first", "lags: [1, 3], scaling: mean, first",
     ("spec.yaml:8:71:", "decoder.input.lags: the decoder reads the encoder's past series: lags must be the encoder's "
      "([1, 2]), got [1, 3]")),
    ("input: {kind: features, context_length: 6, lags: [1, 2], scaling: mean}\n", "input: {kind: vectors}\n",
     ("decoder.input: the decoder's series is scaled, lagged or joined by static features from past_values, which "
      "the encoder reads: the encoder must read 'features' too, not 'vectors'",))])
def test_a_decoder_reads_the_encoders_past_series(tmp_path, capsys, old, new, expected):
    assert old in SEQ2SEQ
    check_fails(tmp_path, capsys, SEQ2SEQ.replace(old, new), *expected)


def model_of(tmp_path, text: str) -> Model:
    compile_spec(parse_spec(text, "informer.yaml"), seed=1).model.save(str(tmp_path / "m.onnx"))
    return Model(str(tmp_path / "m.onnx"))


def test_run_names_bad_series(tmp_path):
    """A lagged, scaled series with static features: past_values of context_length + max(lags) steps, finite,
    a 0/1 observed mask, categories within their tables."""
    model = model_of(tmp_path, SPEC.replace("time_features: 2}", "time_features: 2, context_length: 6, lags: [1, 3], "
                                            "scaling: mean, static_categorical: [3, 2]}"))
    rng = np.random.default_rng(0)
    feeds = {"past_values": rng.standard_normal((2, 9, 2)).astype(np.float32),
             "past_observed_mask": np.ones((2, 9, 2), np.float32),
             "past_time_features": rng.standard_normal((2, 9, 2)).astype(np.float32),
             "static_categorical_features": np.array([[2, 1], [0, 0]])}
    assert model.run(feeds)["last_hidden_state"].shape == (2, 2, 16)  # 6 steps distilled twice
    for name, value, message in [
            ("past_values", np.zeros((2, 8, 2), np.float32), r"past_values: axis 1 must be 9"),
            ("past_values", np.where(np.arange(2) == 1, np.nan, feeds["past_values"]).astype(np.float32),
             r"past_values\[0, 0, 1\]: expected a finite number, got nan"),
            ("past_observed_mask", np.full((2, 9, 2), 0.5, np.float32),
             r"past_observed_mask\[0, 0, 0\]: expected 0 or 1 \(1 for an observed value, 0 for a missing one\)"),
            ("static_categorical_features", np.array([[2, 1], [0, 2]]),
             r"static_categorical_features\[1, 1\]: expected a category of static feature 1 in \[0, 2\), got 2")]:
        with pytest.raises(ValueError, match=message):
            model.run({**feeds, name: value})


def test_run_names_a_calendar_field_outside_its_table(tmp_path):
    model = model_of(tmp_path, SPEC.replace("time_features: 2}", "time_features: 3, time_embedding: fixed}"))
    fields = np.zeros((1, 5, 3), np.float32)
    values = np.zeros((1, 5, 2), np.float32)
    assert model.run({"past_values": values, "past_time_features": fields})["last_hidden_state"].shape == (1, 2, 16)
    fields[0, 4, 2] = 7  # weekday 7: the table holds 0-6
    with pytest.raises(ValueError, match=r"past_time_features\[0, 4, 2\]: expected a calendar field of 2 in \[0, 7\)"):
        model.run({"past_values": values, "past_time_features": fields})
