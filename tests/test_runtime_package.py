"""The deploy side stands alone: tfc_runtime imports and runs a compiled model with the compiler
unimportable, and its package declares only onnxruntime and numpy. `Model.run` checks what it is fed
against the model's metadata and says which input, where, and what was expected."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY = """
tfc: 1
name: tiny
topology: decoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 20, max_length: 16}
decoder: {layers: 1}
head: {kind: lm}
"""


def test_runtime_declares_only_onnxruntime_and_numpy():
    project = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())["project"]
    names = sorted(dep.split(">")[0].split("=")[0].strip() for dep in project["dependencies"])
    assert names == ["numpy", "onnxruntime"]


def test_runtime_runs_a_model_without_the_compiler(tmp_path):
    from tfcompiler import compile_spec, parse_spec

    compile_spec(parse_spec(TINY)).model.save(tmp_path / "tiny.onnx")
    script = f"""
import sys
sys.modules["tfcompiler"] = None  # any import of the compiler now fails
sys.path.insert(0, {str(ROOT / "runtime")!r})
import numpy as np
from tfc_runtime import Model, random_inputs
model = Model({str(tmp_path / "tiny.onnx")!r})
out = model.run(random_inputs(model, batch=2, sequence=5))
assert out["logits"].shape == (2, 5, 20), out["logits"].shape
assert model.metadata["tfcompiler.spec_name"] == "tiny"
roles = {{p.name: p.role for p in model.inputs}}
assert roles == {{"input_ids": "token_ids", "attention_mask": "padding_mask", "position_ids": "position_ids",
                 "past_key_values.0.key": "past_key", "past_key_values.0.value": "past_value"}}, roles
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from tfcompiler import compile_spec, parse_spec
    from tfc_runtime import Model

    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    compile_spec(parse_spec(TINY)).model.save(path)
    return Model(str(path))


def _set(name, index, value):
    """Feeds with one element of one input replaced (as float when the value is one)."""
    def change(feeds):
        array = feeds[name].astype(np.float64 if isinstance(value, float) else feeds[name].dtype)
        array[index] = value
        return {**feeds, name: array}
    return change


def _cut(length):
    return lambda feeds: {name: value[..., :length] if name in ("input_ids", "attention_mask", "position_ids")
                          else value for name, value in feeds.items()}


@pytest.mark.parametrize("change, message", [
    (_set("input_ids", (1, 3), 20), r"input_ids[1, 3]: expected a token id in the vocabulary [0, 20), got 20"),
    (_set("input_ids", (0, 0), -1), r"input_ids[0, 0]: expected a token id in the vocabulary [0, 20), got -1"),
    (_set("input_ids", (0, 2), 2.5), r"input_ids[0, 2]: expected an integer (int64), got 2.5"),
    (_set("attention_mask", (1, 2), 0.5), r"attention_mask[1, 2]: expected 0 or 1 (1 for a token, 0 for padding), "
                                          r"got 0.5"),
    (_set("attention_mask", (0, 4), 2), r"attention_mask[0, 4]: expected 0 or 1 (1 for a token, 0 for padding), "
                                        r"got 2"),
    (_set("position_ids", (1, 4), 16), r"position_ids[1, 4]: expected a position in [0, 16) (max_length 16), got 16"),
    (_cut(0), r"input_ids: axis 1 (sequence_length) is 0 (shape [2, 0]): give at least one token"),
    (lambda feeds: {**feeds, "input_ids": feeds["input_ids"].astype(str)}, r"input_ids: expected numbers (int64)"),
])
def test_run_refuses_inputs_that_do_not_fit_the_model(tiny_model, change, message):
    from tfc_runtime import random_inputs

    feeds = random_inputs(tiny_model, batch=2, sequence=5)
    with pytest.raises(ValueError) as caught:
        tiny_model.run(change(feeds))
    assert str(caught.value).startswith(message), str(caught.value)


def test_run_refuses_lengths_past_max_length_and_bad_counts(tiny_model):
    from tfc_runtime import random_inputs

    with pytest.raises(ValueError, match=r"input_ids: axis 1 \(sequence_length\) is 17, over the model's "
                                         r"max_length 16"):
        tiny_model.run(random_inputs(tiny_model, sequence=17))
    for name, value in (("batch", 0), ("sequence", -5), ("seed", -1)):
        with pytest.raises(ValueError, match=f"{name}: expected an integer >= {int(name == 'seed') ^ 1}, "
                                             f"got {value}"):
            random_inputs(tiny_model, **{name: value})


def test_valid_inputs_still_run_as_before(tiny_model):
    """At max_length, and with whole-number floats and booleans where ints are due: the same logits as
    the int64 feeds (the checks refuse what a cast would change, nothing else)."""
    from tfc_runtime import random_inputs

    assert tiny_model.run(random_inputs(tiny_model, batch=2, sequence=16))["logits"].shape == (2, 16, 20)
    feeds = random_inputs(tiny_model, batch=2, sequence=5, seed=3)
    feeds["attention_mask"][0, :2] = 0
    want = tiny_model.run(feeds)["logits"]
    loose = {**feeds, "input_ids": feeds["input_ids"].astype(np.float32),
             "attention_mask": feeds["attention_mask"].astype(bool)}
    np.testing.assert_array_equal(tiny_model.run(loose)["logits"], want)


def test_run_holds_a_position_grid_to_the_lengths_it_accepts(tmp_path):
    """A conditional position grid (CPVT: 1 class token + rows of 4) takes 1 + 4·k tokens; random
    inputs round up to one, and down where up would pass max_length."""
    from tfcompiler import compile_spec, parse_spec
    from tfc_runtime import Model, random_inputs

    spec = TINY.replace("topology: decoder", "topology: encoder").replace("decoder: {layers: 1}", """\
encoder:
  layers: 2
  overrides:
    - layers: [1, 1]
      block: {positional: {kind: conditional, grid_width: 4, kernel: 3, class_tokens: 1}}
""").replace("head: {kind: lm}", "positional: none\nhead: {kind: pooler}")
    compile_spec(parse_spec(spec)).model.save(tmp_path / "grid.onnx")
    model = Model(str(tmp_path / "grid.onnx"))
    assert random_inputs(model, sequence=6)["input_ids"].shape == (1, 9)
    assert random_inputs(model, sequence=16)["input_ids"].shape == (1, 13)  # 17 is past max_length 16
    feeds = {name: value[:, :6] for name, value in random_inputs(model, sequence=6).items()}
    with pytest.raises(ValueError, match=r"input_ids: axis 1 \(sequence_length\) is 6; the model takes 1 \+ 4·k "
                                         r"for k >= 1 \(the nearest: 5 or 9\)"):
        model.run(feeds)
    model.run(random_inputs(model, sequence=13))


def test_segment_ids_past_their_table_are_a_value_error(tmp_path):
    """The metadata states each integer input's range (`tfcompiler.io_ranges`): a negative segment id and
    one past the table are caught before the run, naming the input and position."""
    from tfcompiler import compile_spec, parse_spec
    from tfc_runtime import Model, random_inputs

    spec = TINY.replace("topology: decoder", "topology: encoder").replace("decoder: {layers: 1}", """\
input: {kind: tokens, token_types: 2}
encoder: {layers: 1}""").replace("head: {kind: lm}", "head: {kind: pooler}")
    compile_spec(parse_spec(spec)).model.save(tmp_path / "types.onnx")
    model = Model(str(tmp_path / "types.onnx"))
    feeds = random_inputs(model, batch=1, sequence=4)
    with pytest.raises(ValueError, match=r"token_type_ids\[0, 1\]: expected a segment id in \[0, 2\), got -1"):
        model.run({**feeds, "token_type_ids": np.array([[0, -1, 0, 0]])})
    with pytest.raises(ValueError, match=r"token_type_ids\[0, 2\]: expected a segment id in \[0, 2\), got 2"):
        model.run({**feeds, "token_type_ids": np.array([[0, 1, 2, 0]])})
    model.run({**feeds, "token_type_ids": np.array([[0, 1, 1, 0]])})
