"""The `trajectory` input's refusals: located spec errors for what Decision Transformer's stream cannot be (another
topology, positions by place in the stream, the embedding's own scale or norm, widths below 1; the `action` head
over another input), and Model.run's
named errors for inputs that do not fit (a state of another width, a timestep past max_ep_len, a non-finite
return-to-go, more steps than max_length)."""
from __future__ import annotations

import numpy as np
import pytest

from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import SpecError

SPEC = """tfc: 1
name: trajectory
topology: decoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 6}
input: {kind: trajectory, state_dim: 3, act_dim: 2, max_ep_len: 50}
positional: none
decoder: {layers: 1}
head: {kind: none}
"""


@pytest.mark.parametrize("change, message", [
    (("positional: none\n", ""), r"x.yaml:5:\d+: input.kind: a trajectory's positions are its timesteps .* set "
                                 r"positional: none \(got 'learned'\)"),
    (("positional: none", "positional: rope"), r"input.kind: .* set positional: none \(got 'rope'\)"),
    (("topology: decoder", "topology: encoder"),
     r"x.yaml:5:\d+: input: input 'trajectory' is one causal stream .* topology 'decoder', got 'encoder'"),
    (("decoder: {layers: 1}", "decoder: {layers: 1}\nembedding: {scale: true}"),
     r"x.yaml:8:\d+: input.kind: input 'trajectory' normalises its own tokens \(embed_ln\)"),
    (("state_dim: 3", "state_dim: 0"), r"x.yaml:5:\d+: input.state_dim: expected an integer >= 1, got 0"),
    ((", act_dim: 2", ""), "input.act_dim: missing required key 'act_dim'")])
def test_spec_errors_are_located(change, message):
    text = SPEC.replace(*change)
    if change[1] == "topology: encoder":  # its stack renamed too, so that the input's rule is what speaks
        text = text.replace("decoder: {layers: 1}", "encoder: {layers: 1}")
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "x.yaml")


def test_action_head_needs_a_trajectory():
    """The action head reads a trajectory's state and action tokens: over token ids it is a located error."""
    text = SPEC.replace("input: {kind: trajectory, state_dim: 3, act_dim: 2, max_ep_len: 50}\npositional: none\n",
                        "").replace("head: {kind: none}", "head: {kind: action}")
    with pytest.raises(SpecError, match=r"x.yaml:6:\d+: head: head 'action' predicts from the state and action "
                                        r"tokens of a trajectory: it needs a decoder reading input kind 'trajectory'"):
        parse_spec(text, "x.yaml")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tfc_runtime import Model

    path = tmp_path_factory.mktemp("trajectory") / "model.onnx"
    compile_spec(parse_spec(SPEC), seed=1).model.save(str(path))
    return Model(str(path))


def steps(count: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"states": rng.standard_normal((2, count, 3)).astype(np.float32),
            "actions": rng.standard_normal((2, count, 2)).astype(np.float32),
            "returns_to_go": rng.standard_normal((2, count, 1)).astype(np.float32),
            "timesteps": np.arange(2 * count).reshape(2, count), "attention_mask": np.ones((2, count), np.int64)}


def test_model_run_takes_steps(model):
    (hidden,) = model.run(steps()).values()
    assert hidden.shape == (2, 12, 16) and np.isfinite(hidden).all()  # three tokens a step


@pytest.mark.parametrize("name, value, message", [
    ("states", np.zeros((2, 4, 4), np.float32), r"states: axis 2 must be 3 \(shape \['batch_size', "
                                                 r"'sequence_length', 3\]\), got shape \[2, 4, 4\]"),
    ("actions", np.zeros((2, 4), np.float32), r"actions: expected 3 axes"),
    ("timesteps", np.array([[0, 1, 2, 3], [47, 48, 49, 50]]),
     r"timesteps\[1, 3\]: expected a timestep in \[0, 50\), got 50"),
    ("timesteps", np.array([[0, 1, 2, 3], [-1, 0, 1, 2]]), r"timesteps\[1, 0\]: expected a timestep in \[0, 50\)"),
    ("returns_to_go", np.full((2, 4, 1), np.nan, np.float32), r"returns_to_go\[0, 0, 0\]: expected a finite number"),
    ("attention_mask", np.full((2, 4), 2), r"attention_mask\[0, 0\]: expected 0 or 1")])
def test_model_run_names_inputs_that_do_not_fit(model, name, value, message):
    with pytest.raises(ValueError, match=message):
        model.run({**steps(), name: value})


def test_model_run_refuses_more_steps_than_max_length(model):
    with pytest.raises(ValueError, match=r"axis 1 \(sequence_length\) is 7, over the model's max_length 6"):
        model.run(steps(7))


def test_interleave_and_deinterleave_are_inverse():
    """The IR ops the stream is woven and read back with: step t's tokens at 3t, 3t + 1, 3t + 2; the symbolic
    length S·3 read back as S (the head's outputs keep the inputs' axis name), a fixed length exactly."""
    from tfcompiler.ir.ops import infer_types, op_def
    from tfcompiler.ir.types import TensorType

    step = TensorType("float32", ("batch_size", "sequence_length", 4))
    (woven,) = infer_types("interleave", {}, [step] * 3)
    assert woven.shape == ("batch_size", "sequence_length*3", 4)
    values = [np.full((2, 5, 4), k, np.float32) + np.arange(5)[None, :, None] * 10 for k in range(3)]
    (stream,) = op_def("interleave").evaluate({}, *values)
    assert stream[0, :, 0].tolist() == [10 * t + k for t in range(5) for k in range(3)]
    for k in range(3):
        attrs = {"count": 3, "index": k}
        assert infer_types("deinterleave", attrs, [woven])[0].shape == step.shape
        fixed = infer_types("deinterleave", attrs, [TensorType("float32", (2, 7, 4))])[0]
        assert fixed.shape == (2, (7 - k + 2) // 3, 4)
        np.testing.assert_array_equal(op_def("deinterleave").evaluate(attrs, stream)[0], values[k])
