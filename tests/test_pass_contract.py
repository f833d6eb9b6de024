"""The pass contract: ordering declarations checked (a pipeline in a wrong order is refused, an extra
pass placed by them), requires/ensures caught with the node's origin, PassError located (never "?"),
the runner holding a pass to its report, rewritten marks through the Graph API that leave the emitted
ONNX as it was, and the origin spans --explain prints."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import tiny_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import init_weights
from tfcompiler.ir import Graph, Value
from tfcompiler.ir.graph import GraphError
from tfcompiler.language import parse_spec
from tfcompiler.lower import to_onnx
from tfcompiler.passes import ContractError, OrderError, PassError, PassResult, make_pipeline, run_pipeline
from tfcompiler.passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from tfcompiler.passes.eliminate_dead_code import EliminateDeadCode
from tfcompiler.passes.fold_constants import FoldConstants
from tfcompiler.passes.fuse_skip_norm import FuseSkipNorm
from tfcompiler.passes.pack_projections import PackProjections
from tfcompiler.passes.pipeline import PIPELINES
from tfcompiler.passes.quantize_weights import QuantizeWeights
from tfcompiler.passes.report import span


def tensor(g: Graph, name: str, shape=("batch_size", 3, 4)) -> Value:
    return g.add1("input", attrs=dict(name=name, dtype="float32", shape=shape, role="x"))


def residual_norm_graph() -> Graph:
    """y = layer_norm(a + b) at decoder.layers.3.ffn_norm."""
    g = Graph()
    a, b = tensor(g, "a"), tensor(g, "b")
    scale = g.add1("param", attrs=dict(name="scale", dtype="float32", shape=(4,), init="ones"))
    total = g.add1("add", [a, b], origin="decoder.layers.3")
    g.outputs["y"] = g.add1("layer_norm", [total, scale], {"epsilon": 1e-5}, origin="decoder.layers.3.ffn_norm")
    return g


# --- ordering ---------------------------------------------------------------------------------
@pytest.mark.parametrize("order, message", [
    ([EliminateDeadCode, FoldConstants], "fold_constants must run before eliminate_dead_code"),
    ([PackProjections, EliminateCommonSubexpressions],
     "pack_projections must run after eliminate_common_subexpressions"),
    ([EliminateCommonSubexpressions, FoldConstants], "eliminate_common_subexpressions must run after fold_constants"),
])
def test_a_pipeline_in_a_wrong_order_is_refused_with_the_reason(order, message):
    with pytest.raises(OrderError, match=message):
        run_pipeline(residual_norm_graph(), [cls() for cls in order])


def test_a_named_pipeline_in_a_wrong_order_is_refused(monkeypatch):
    monkeypatch.setitem(PIPELINES, "backwards", [QuantizeWeights, PackProjections])
    with pytest.raises(OrderError, match=r"quantize_weights must run after pack_projections \(a packed projection"):
        make_pipeline("backwards")


def test_quantization_is_placed_by_its_declarations():
    """As late as allowed: after packing (and every other rewrite), before dead-code elimination."""
    names = [p.name for p in make_pipeline("default", "int8")]
    assert names == ["fold_constants", "eliminate_common_subexpressions", "sparsify_attention", "pack_projections",
                     "fuse_skip_norm", "fuse_cached_attention", "quantize_weights", "eliminate_dead_code"]
    assert [p.name for p in make_pipeline("none", "int4")] == ["quantize_weights"]


# --- requires / ensures -----------------------------------------------------------------------
def test_a_pass_that_breaks_its_ensures_is_caught_at_the_node():
    class LazyFuse(FuseSkipNorm):
        name = "lazy_fuse"

        def rewrite(self, graph):
            return PassResult(graph, False, ["skipped"])

    with pytest.raises(ContractError, match="layer_norm still reads a residual sum") as error:
        LazyFuse().run(residual_norm_graph())
    assert error.value.origin == "decoder.layers.3.ffn_norm"
    with pytest.raises(PassError, match="^pass lazy_fuse failed at /decoder/layers/3/ffn_norm: layer_norm still"):
        run_pipeline(residual_norm_graph(), [LazyFuse()])


def test_dead_code_left_behind_breaks_the_promise():
    class KeepsDead(EliminateDeadCode):
        def rewrite(self, graph):
            return PassResult(graph, False, ["kept everything"])

    g = residual_norm_graph()
    g.add1("tanh", [g.inputs_of(g.outputs["y"].node)[0]], origin="decoder.layers.3.unused")
    with pytest.raises(PassError, match="failed at /decoder/layers/3/unused: 1 node.s. feed no output, first a tanh"):
        run_pipeline(g, [KeepsDead()])


def test_packing_requires_equal_inputs_merged_first():
    """Two equal relu(x) each feeding projections would pack as two groups: refused, at the duplicate."""
    g = Graph()
    x = tensor(g, "x")
    for i, origin in enumerate(("layers.0.norm", "layers.1.norm")):
        h = g.add1("relu", [x], origin=origin)
        for name in ("query", "key"):
            w = g.add1("param", attrs=dict(name=f"{i}.{name}.weight", dtype="float32", shape=(4, 4), init="matrix"))
            g.outputs[f"{i}.{name}"] = g.add1("matmul", [h, w])
    with pytest.raises(PassError, match="pack_projections failed at /layers/1/norm: relu feeds weight projections"):
        run_pipeline(g, [PackProjections()])
    graph, report = run_pipeline(g, [EliminateCommonSubexpressions(), PackProjections()])
    assert report.records[1].changed and len(graph.by_type("split")) == 1


# --- located errors ---------------------------------------------------------------------------
def test_a_verify_failure_names_the_origin_of_the_node():
    class Misshapes(FoldConstants):
        name = "misshapes"

        def rewrite(self, graph):
            graph.weights["scale"] = np.ones(5, np.float32)
            (norm,) = graph.by_type("layer_norm")
            graph.mark_rewritten(norm)
            return PassResult(graph, True, ["broke a weight"])

    g = residual_norm_graph()
    g.weights = {"scale": np.ones(4, np.float32)}
    for node in g.by_type("param"):  # the param at the spec entry that owns it
        g.nx_graph.nodes[node]["op"] = replace(g.op(node), origin="decoder.layers.3.ffn_norm")
    with pytest.raises(PassError, match=r"^pass misshapes failed at /decoder/layers/3/ffn_norm: param node \d+: "
                                        r"weight 'scale' has shape \(5,\)"):
        run_pipeline(g, [Misshapes()], verify_each=True)


def test_a_graph_edit_failure_names_the_origin_and_an_unlocated_one_says_no_question_mark():
    class BadReplace(FoldConstants):
        name = "bad_replace"

        def rewrite(self, graph):
            (norm,) = graph.by_type("layer_norm")
            graph.replace_all_uses(Value(norm, 0), graph.inputs_of(norm)[1])  # (4,) for (B, 3, 4)
            return PassResult(graph, True, [])

    with pytest.raises(PassError, match="^pass bad_replace failed at /decoder/layers/3/ffn_norm: cannot replace"):
        run_pipeline(residual_norm_graph(), [BadReplace()])

    class Raises(FoldConstants):
        name = "raises"

        def rewrite(self, graph):
            raise ValueError("no node to blame")

    with pytest.raises(PassError, match="^pass raises failed: no node to blame$"):
        run_pipeline(residual_norm_graph(), [Raises()])


# --- the runner holds a pass to its report ----------------------------------------------------
def test_a_pass_must_report_what_it_did():
    class Silent(FoldConstants):
        name = "silent"

        def rewrite(self, graph):
            (norm,) = graph.by_type("layer_norm")
            graph.replace(norm, "rms_norm")
            return PassResult(graph, False, ["nothing to do"])

    with pytest.raises(PassError, match="^pass silent failed at /decoder/layers/3/ffn_norm: it reported no change"):
        run_pipeline(residual_norm_graph(), [Silent()])

    class Boasts(FoldConstants):
        name = "boasts"

        def rewrite(self, graph):
            return PassResult(graph, True, ["did a lot"])

    with pytest.raises(PassError, match="boasts failed: it reported a change but left the graph as it was"):
        run_pipeline(residual_norm_graph(), [Boasts()])

    class Mute(FoldConstants):
        name = "mute"

        def rewrite(self, graph):
            return PassResult(graph, False, [])

    with pytest.raises(PassError, match="mute failed: it changed nothing and did not say why"):
        run_pipeline(residual_norm_graph(), [Mute()])


# --- marks ------------------------------------------------------------------------------------
def test_replace_keeps_origin_and_label_and_extends_the_history():
    g = residual_norm_graph()
    (norm,) = g.by_type("layer_norm")
    with g.rewriting("first"):
        (new,) = g.replace(norm, "rms_norm")
    with g.rewriting("second"):
        (newer,) = g.replace(new.node, "rms_norm", label="Again")
    op = g.op(newer.node)
    assert (op.origin, op.label, op.rewritten_by) == ("decoder.layers.3.ffn_norm", "Again", ("first", "second"))
    assert g.outputs["y"] == newer and norm not in g.nx_graph
    g.add1("relu", [newer])  # outside rewriting: no mark
    assert [g.op(n).rewritten_by for n in g.by_type("relu")] == [()]
    before = g.describe()
    with pytest.raises(GraphError, match="rms_norm output 0 is float32.batch_size, 3, 4., transpose's is") as error:
        g.replace(newer.node, "transpose", g.inputs_of(newer.node)[:1], dict(perm=(0, 2, 1)))  # refused, located
    assert error.value.origin == "decoder.layers.3.ffn_norm" and g.describe() == before


def test_rewritten_marks_do_not_change_the_emitted_onnx():
    spec = parse_spec(tiny_spec("decoder", "none"))
    graph = build_graph(spec)
    graph.weights = init_weights(graph, spec.init, seed=0)
    graph, _ = run_pipeline(graph, make_pipeline())
    assert any(graph.op(n).rewritten_by for n in graph.nodes())
    marked = to_onnx(graph, 17).serialize()
    for node in graph.nodes():
        graph.nx_graph.nodes[node]["op"] = replace(graph.op(node), rewritten_by=())
    assert to_onnx(graph, 17).serialize() == marked


@pytest.mark.parametrize("origins, text", [
    ([f"decoder.layers.{i}.ffn" for i in range(12)], "decoder.layers.0..11.ffn"),
    (["a.layers.0.x", "a.layers.1.x", "a.layers.2.x", "a.layers.5.x", "a.embeddings"],
     "a.embeddings, a.layers.0..2,5.x"),
    (["s.1.layers.0.n", "s.1.layers.1.n", "s.2.layers.0.n"], "s.1.layers.0..1.n, s.2.layers.0.n"),
    (["", "x"], "(no origin), x"),
])
def test_span_writes_origins_as_ranges(origins, text):
    assert span(origins) == text
