"""Input kind `vectors` beyond its numbers (test_components.py checks those against the NumPy reference,
the parity tests against torch.nn.Transformer and torch.nn.RNN / LSTM / GRU): what a spec may not ask of
it, as located errors; what `Model.run` checks of float inputs; that generation refuses it with a
reason; how it shrinks; that the size estimate counts its weights."""
from __future__ import annotations

import math

import numpy as np
import pytest
import yaml

from test_errors import check_fails
from tfc_runtime import Generator, Model, random_inputs
from tfcompiler import compile_spec, parse_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params
from tfcompiler.language.shrink import shrink_data

SPEC = """\
tfc: 1
name: vectors
topology: decoder
model: {width: 32, heads: 4, ffn_width: 48, vocab_size: 50, max_length: 40}
input: {kind: vectors, features: 7}
positional: rope
decoder: {layers: 2}
head: {kind: none}
"""

RECURRENT = {"positional: rope": "positional: none",
             "decoder: {layers: 2}": "block: {placement: none, attention: {kind: recurrent, cell: gru}, "
                                     "ffn: {enabled: false}}\ndecoder: {layers: 2}",
             "features: 7": "features: 7, linear: false"}


def edited(text: str, changes: dict[str, str]) -> str:
    for old, new in changes.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.mark.parametrize("changes, expected", [
    ({"head: {kind: none}": "head: {kind: lm}"},
     ["spec.yaml:8:", "head.tied: input 'vectors' has no token table for the LM head to reuse: set head.tied: false"]),
    ({"head: {kind: none}": "head: {kind: lm, tied: false}\ngeneration: {eos_token_id: 1}"},
     ["spec.yaml:9:", "generation: `generation` feeds back the token ids it picks, and input 'vectors' reads none"]),
    ({"topology: decoder": "topology: hierarchical", "decoder: {layers: 2}":
      "encoder: {layers: 1}\ndocument: {layers: 1}", "positional: rope": "positional: learned"},
     ["spec.yaml:5:", "input: a hierarchical model reads documents of token ids"]),
    ({"features: 7": "features: 7, linear: false"},
     ["spec.yaml:5:", "input.linear: vectors of width 7 (not the width 32) enter decoder layer 0 as they are: it "
      "must be a recurrent layer with placement: none"]),
    ({**RECURRENT, "positional: none": "positional: learned"},
     ["input.linear: vectors of width 7 enter the first layer as they are: they take no positions added at the "
      "embeddings (set positional: none, got 'learned')"]),
    ({**RECURRENT, "decoder: {layers: 2}": "decoder: {layers: 2, memory: 2}"},
     ["input.linear: vectors of width 7 (not the width 32) enter decoder layer 0 as they are: it must be a recurrent "
      "layer with placement: none, no positions, in a stack with no memory or memory slots"]),
], ids=["tied_lm_head", "generation", "hierarchical", "first_layer_not_recurrent", "positions_at_the_embeddings",
        "segment_memory"])
def test_what_vectors_cannot_do_is_a_located_error(tmp_path, capsys, changes, expected):
    check_fails(tmp_path, capsys, edited(SPEC, changes), *expected)


def test_vectors_as_wide_as_the_model_need_no_embedding():
    for features in ("0", "32"):
        params = declared_params(build_graph(parse_spec(SPEC.replace("features: 7", f"features: {features}"))))
        assert not [name for name in params if "vectors" in name]
    params = declared_params(build_graph(parse_spec(SPEC)))
    assert {name: shape for name, (shape, _) in params.items() if "vectors" in name} == {
        "embeddings.vectors.weight": (7, 32), "embeddings.vectors.bias": (32,)}
    # an encoder-decoder sharing its embedding has one pair, named for both stacks
    shared = edited(SPEC, {"topology: decoder": "topology: encoder-decoder",
                           "decoder: {layers: 2}": "encoder: {layers: 1}\ndecoder: {layers: 1}"})
    assert sorted(name for name in declared_params(build_graph(parse_spec(shared))) if "vectors" in name) == [
        "embeddings.vectors.bias", "embeddings.vectors.weight"]
    unshared = shared.replace("positional: rope", "positional: rope\nembedding: {shared: false}")
    assert sorted(name for name in declared_params(build_graph(parse_spec(unshared))) if "vectors" in name) == [
        f"{stack}.embeddings.vectors.{part}" for stack in ("decoder", "encoder") for part in ("bias", "weight")]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The decoder compiled with its cache, as a model folder."""
    path = tmp_path_factory.mktemp("vectors")
    compile_spec(parse_spec(SPEC), seed=1).model.save(str(path / "model.onnx"))
    return path


def test_model_run_takes_float_vectors_and_checks_them(folder):
    model = Model(folder / "model.onnx")
    roles = {port.name: port.role for port in model.inputs}
    assert roles["inputs_embeds"] == "vectors" and roles["attention_mask"] == "padding_mask"
    feeds = random_inputs(model, batch=2, sequence=5)
    assert feeds["inputs_embeds"].shape == (2, 5, 7) and feeds["inputs_embeds"].dtype == np.float32
    out = model.run(feeds)["last_hidden_state"]
    assert out.shape == (2, 5, 32) and np.isfinite(out).all()
    as_integers = model.run({**feeds, "inputs_embeds": np.round(feeds["inputs_embeds"]).astype(np.int64)})
    rounded = model.run({**feeds, "inputs_embeds": np.round(feeds["inputs_embeds"])})
    np.testing.assert_array_equal(as_integers["last_hidden_state"], rounded["last_hidden_state"])

    def refused(value, message):
        with pytest.raises(ValueError, match=message):
            model.run({**feeds, "inputs_embeds": value})

    vectors = feeds["inputs_embeds"]
    refused(vectors[..., :6], r"^inputs_embeds: axis 2 must be 7 \(shape \['batch_size', 'sequence_length', 7\]\), "
                              r"got shape \[2, 5, 6\]")
    refused(vectors[..., 0], r"^inputs_embeds: expected 3 axes")
    broken = vectors.copy()
    broken[1, 3, 2] = np.nan
    refused(broken, r"^inputs_embeds\[1, 3, 2\]: expected a finite number, got nan")
    for length, message in ((0, "is 0"), (41, "is 41, over the model's max_length 40")):
        with pytest.raises(ValueError, match=rf"^inputs_embeds: axis 1 \(sequence_length\) {message}"):
            model.run(random_inputs(model, batch=2, sizes={"sequence_length": length}))
    refused([["a"]], r"^inputs_embeds: expected numbers \(float32\)")


def test_generation_refuses_vectors_and_says_why(folder):
    with pytest.raises(ValueError, match=r"it reads vectors \(inputs_embeds\), and generation feeds back the token "
                                         r"ids it picks; run it a call at a time with Model.run"):
        Generator(folder)


@pytest.mark.parametrize("features, shrunk", [(0, 0), (512, 32), (80, 8), (5, 5)])
def test_features_shrink_with_the_width_or_stay_small(features, shrunk):
    """Vectors as wide as the model stay as wide as the shrunk one (no embedding), others stay narrower."""
    data = yaml.safe_load(SPEC.replace("width: 32", "width: 512").replace("features: 7", f"features: {features}"))
    small = shrink_data(data)
    assert small["input"]["features"] == shrunk and small["model"]["width"] == 32
    params = declared_params(build_graph(parse_spec(yaml.safe_dump(small))))
    assert ("embeddings.vectors.weight" in params) == (features not in (0, 512))


@pytest.mark.parametrize("text", [SPEC, edited(SPEC, RECURRENT), SPEC.replace("features: 7", "features: 0")],
                         ids=["linear_embedding", "into_a_recurrent_layer", "as_wide_as_the_model"])
def test_the_size_estimate_counts_the_input_layer(text):
    spec = parse_spec(text)
    params = declared_params(build_graph(spec))
    assert spec.input.parameters(spec) == sum(math.prod(shape) for name, (shape, _) in params.items()
                                              if name.startswith("embeddings.vectors."))


def test_the_compile_summary_says_a_vectors_model_does_not_generate(tmp_path, capsys):
    from tfcompiler.cli import main

    text = edited(SPEC, {"topology: decoder": "topology: encoder-decoder",
                         "decoder: {layers: 2}": "encoder: {layers: 1}\ndecoder: {layers: 1}"})
    (tmp_path / "spec.yaml").write_text(text)
    assert main(["compile", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "model.onnx")]) == 0  # not -q
    assert "input 'vectors' feeds no token ids back, so the model does not generate" in capsys.readouterr().err
