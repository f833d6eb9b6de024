"""Every shipped spec compiles out of the box (with every pass verified and numerically checked
against the IR before the pipeline), inspects, and runs on onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from tfcompiler.cli import main
from tfcompiler.passes import make_pipeline
from tfc_runtime import Model, random_inputs

SPECS = sorted((ROOT / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_compiles_and_runs(path, tmp_path, capsys):
    out = tmp_path / f"{path.stem}.onnx"
    assert main(["compile", str(path), "-o", str(out), "--verify", "--explain", "-q"]) == 0
    report = capsys.readouterr().out
    assert report.count("numerics checked") == len(make_pipeline())  # every pass, checked
    assert main(["inspect", str(path), "--json"]) == 0, capsys.readouterr().err  # every op has its shape
    capsys.readouterr()
    import onnx

    names = [t.name for t in onnx.load(str(out), load_external_data=False).graph.initializer]
    assert len(names) == len(set(names)), "an initializer is written twice"  # shared weights stay one tensor
    model = Model(str(out))
    outputs = model.run(random_inputs(model, batch=2, sequence=9))
    for name, value in outputs.items():  # recurrent states are (directions, batch, width)
        batch_axis = 1 if name.startswith("present_states.") else 0
        assert value.shape[batch_axis] == 2 and np.isfinite(value).all(), name
