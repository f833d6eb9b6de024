"""Every shipped spec at full size: its IR verified after every pass (every pass's promise still holding at
the end, every rewritten node located, each pass's record what the graph shows), lowered to a model the ONNX checker
accepts with no initializer written twice, inspected, and run once on onnxruntime; every pass's numerics
evaluated on the spec's shrunk copy (what `tfc compile --verify` does above NUMERICS_FULL_UP_TO
parameters), with the passes that change the graph the ones the spec implies, and the same decisions,
IR ops and ONNX ops at both sizes."""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest

from conftest import ROOT, tiny_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.cache import why_no_cache
from tfcompiler.builders.weights import materialize
from tfcompiler.cli import main
from tfcompiler.compiler import NUMERICS_FULL_UP_TO, compile_spec, verify_verdict
from tfcompiler.inspection import every_node
from tfcompiler.ir import verify
from tfcompiler.language.schema import kind_of
from tfcompiler.lengths import LONG_FROM
from tfcompiler.lower.targets import lowering_summary
from tfcompiler.passes import make_pipeline
from tfc_runtime import Model, random_inputs

SPECS = sorted((ROOT / "specs").glob("*.yaml"))
# of the outputs' scale: a tenth of run_pipeline's own 1e-5 (over that the compile fails). The passes are exact
# but for a packed GEMM's order of summation, whose fp32 rounding at width <= 64 stays far below 1e-6
TOLERANCE = 1e-6
# attention kinds whose pattern has a bounded reach or few key blocks: the sparsity pass rewrites them
SPARSE_KINDS = {"sliding_window", "longformer", "bigbird", "block_local", "block_local_2d", "sparse_transformer"}


def implied_changes(spec) -> dict[str, bool]:
    """Whether each pass must change the graph, from what the spec says."""
    blocks = [block for _, _, stack_blocks in spec.stacks() for block in stack_blocks]
    kinds = {kind_of(b.attention) for b in blocks} | {kind_of(b.cross_attention) for b in blocks
                                                        if b.cross_attention is not None}
    graph = build_graph(spec)
    masked = any(graph.op(n).attrs["role"] == "padding_mask" for n in graph.graph_inputs())
    # attention layers share mask biases (an image's patches are all real: no mask), and two stacks their fixed
    # position table (a time series has no mask)
    tables = len(spec.stacks()) > 1 and kind_of(spec.positional) in ("sinusoidal", "scaled_sinusoidal")
    return {"eliminate_common_subexpressions": kinds != {"recurrent"} and masked or tables,
            # a decoder with a KV cache keeps its patterns as masks: its keys are the past and the new
            # tokens, never a square block (the generator prefills long prompts in chunks)
            "sparsify_attention": bool(kinds & SPARSE_KINDS) and bool(why_no_cache(spec)),
            # every shipped spec has projections that read one input (q/k/v); long models pack none of them,
            # but for a decoder with a KV cache (its generation reads long prompts in chunks)
            "pack_projections": spec.model.max_length < LONG_FROM or (
                spec.topology == "decoder" and kinds != {"recurrent"} and not why_no_cache(spec)),
            # residual sums the norms read (a GRU-gated residual has none)
            "fuse_skip_norm": any(b.placement != "none" and b.residual == "add" for b in blocks)}


def changed(report) -> dict[str, bool]:
    return {record.name: record.changed for record in report.records}


def worst_differences(report) -> list[float]:
    """Each pass's one numerics note, parsed: its outputs' difference from the IR before the pipeline."""
    notes = [[note for note in record.notes if note.startswith("numerics checked")] for record in report.records]
    assert all(len(found) == 1 for found in notes), notes
    return [float(re.search(r"outputs within (\S+) of their scale", found[0]).group(1)) for found in notes]


def op_types(graph) -> set[str]:
    return {graph.op(node).type for node in graph.nodes()}


def onnx_op_types(model) -> set[str]:
    return {node.op_type for node in every_node(model.proto.graph)}


def draw_weights(model) -> None:
    """The seeded weights drawn on every core (the external-data writer draws them one by one); keyed by
    position, so a name written twice stays twice."""
    arrays = materialize(dict(enumerate(weight for _, weight in model.initializers)))
    model.initializers[:] = [(name, arrays[i]) for i, (name, _) in enumerate(model.initializers)]


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_spec_compiles_checks_and_runs(path, memory_path, capsys):
    compiled = compile_spec(path, check_numerics=True)  # verifies the IR after every pass
    verify(build_graph(compiled.spec))  # and before the first
    spec, checked = compiled.spec, compiled.numerics or compiled
    assert (compiled.numerics is not None) == (compiled.parameters > NUMERICS_FULL_UP_TO)
    assert checked.parameters <= NUMERICS_FULL_UP_TO
    assert len(checked.report.records) == len(make_pipeline())
    assert max(worst_differences(checked.report)) <= TOLERANCE
    implied = implied_changes(spec)
    assert {name: changed(compiled.report)[name] for name in implied} == implied
    for p in make_pipeline():  # at the end every pass's promise still holds: a later pass undid none
        p.ensures(compiled.graph)
    graph = compiled.graph  # every node a pass made or marked keeps a spec origin (errors, ONNX names)
    unlocated = [graph.op(n) for n in graph.nodes() if graph.op(n).rewritten_by and not graph.op(n).origin]
    assert not unlocated, unlocated[:3]
    for record in compiled.report.records:  # what the report says a pass did is what the graph shows
        assert record.changed == (bool(record.rewrites) or record.nodes_after != record.nodes_before), record
    # the shrunk copy makes the same decisions, fold and dead code included, and ends in the same ops
    assert changed(checked.report) == changed(compiled.report)
    assert op_types(checked.graph) == op_types(compiled.graph)
    assert onnx_op_types(checked.model) == onnx_op_types(compiled.model)  # lowered alike, long-input forms too
    assert verify_verdict(compiled).startswith("verified: ")  # what --verify and --explain print
    assert lowering_summary(compiled.model.proto.graph, "portable", compiled.model.missed, "fp32")

    out = memory_path / f"{path.stem}.onnx"
    draw_weights(compiled.model)
    compiled.model.save(out, external_data=True)  # the checker and the initializer names need no payloads
    onnx.checker.check_model(str(out), full_check=True)
    names = [t.name for t in onnx.load(str(out), load_external_data=False).graph.initializer]
    assert len(names) == len(set(names)), "an initializer is written twice"  # shared weights stay one tensor
    assert main(["inspect", str(path), "--json"]) == 0, capsys.readouterr().err  # every op has its shape
    model = Model(str(out))
    outputs = model.run(random_inputs(model, batch=2, sequence=9))
    for name, value in outputs.items():  # recurrent states are (directions, batch, width)
        batch_axis = 1 if name.startswith("present_states.") else 0
        assert value.shape[batch_axis] == 2 and np.isfinite(value).all(), name


def test_verify_checks_a_large_spec_on_its_shrunk_copy(tmp_path, capsys):
    out = tmp_path / "cpvt.onnx"
    assert main(["compile", str(ROOT / "specs" / "cpvt-encoder.yaml"), "-o", str(out), "--verify", "--explain",
                 "-q"]) == 0
    report = capsys.readouterr().out
    assert "numerics, on a shrunk copy of the spec:" in report
    verdict = re.search(r"^verified: the IR after each of (\d+) passes; numerics of each pass on a shrunk copy "
                        r"of the spec \(\d+ wide, ([\d,]+) parameters\): outputs within (\S+) of the IR", report, re.M)
    assert verdict, report
    assert int(verdict[1]) == len(make_pipeline()) and float(verdict[3]) <= TOLERANCE
    assert int(verdict[2].replace(",", "")) <= NUMERICS_FULL_UP_TO
    assert report.count("numerics checked") == len(make_pipeline())  # on the copy only


def test_verify_checks_a_small_spec_itself(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny_spec("encoder-decoder", "sinusoidal"))
    assert main(["compile", str(spec), "-o", str(tmp_path / "tiny.onnx"), "--verify", "--explain", "-q"]) == 0
    report = capsys.readouterr().out
    assert "shrunk" not in report and report.count("numerics checked") == len(make_pipeline())
    assert re.search(r"^verified: the IR after each of \d+ passes; numerics of each pass on the model itself: "
                     r"outputs within \S+ of the IR before the pipeline$", report, re.M), report
