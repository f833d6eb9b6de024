"""The deploy side stands alone: tfc_runtime imports and runs a compiled model with the compiler
unimportable, and its package declares only onnxruntime and numpy."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

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
