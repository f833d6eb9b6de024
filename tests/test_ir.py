"""The IR: ported edges, rewriting API, verifier, shape rules and the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_onnx
from tfcompiler.ir import Graph, VerifyError, evaluate, verify
from tfcompiler.ir.graph import Op
from tfcompiler.ir.ops import OpTypeError
from tfcompiler.ir.types import TensorType
from tfcompiler.lower import to_onnx


def graph_with_input(shape=("batch_size", 4)):
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=shape, role="x"))
    return g, x


def test_mul_of_a_value_with_itself_keeps_both_ports():
    g, x = graph_with_input()
    y = g.add1("mul", [x, x])
    g.outputs["y"] = y
    assert g.inputs_of(y.node) == [x, x]
    assert g.users(x) == [(y.node, 0), (y.node, 1)]
    verify(g)
    np.testing.assert_array_equal(evaluate(g, {"x": np.full((2, 4), 3, np.float32)})["y"], 9)


def test_replace_all_uses_moves_users_and_outputs():
    g, x = graph_with_input()
    a = g.add1("relu", [x])
    b = g.add1("tanh", [a])
    g.outputs.update(a=a, b=b)
    c = g.add1("neg", [x])
    g.replace_all_uses(a, c)
    assert g.inputs_of(b.node) == [c] and g.outputs["a"] == c
    g.remove(a.node)
    verify(g)
    with pytest.raises(ValueError, match="still used"):
        g.remove(c.node)


def test_replace_all_uses_refuses_a_different_type():
    g, x = graph_with_input()
    a = g.add1("relu", [x])
    cast = g.add1("cast", [x], {"dtype": "int64"})
    with pytest.raises(ValueError, match="cannot replace"):
        g.replace_all_uses(a, cast)


def test_copy_is_independent():
    g, x = graph_with_input()
    g.outputs["y"] = g.add1("relu", [x])
    clone = g.copy()
    clone.outputs["z"] = clone.add1("tanh", [clone.outputs["y"]])
    assert len(g.nodes()) == 2 and len(clone.nodes()) == 3 and "z" not in g.outputs


def test_verify_catches_a_cycle():
    g, x = graph_with_input()
    a = g.add1("relu", [x])
    b = g.add1("tanh", [a])
    g.nx_graph.add_edge(b.node, a.node, src_output=0, dst_input=1)
    with pytest.raises(VerifyError, match="cycle"):
        verify(g)


def test_verify_catches_a_missing_input_port():
    g, x = graph_with_input()
    y = g.add1("add", [x, x])
    g.outputs["y"] = y
    edge = next(k for _, _, k, d in g.nx_graph.in_edges(y.node, keys=True, data=True) if d["dst_input"] == 0)
    g.nx_graph.remove_edge(x.node, y.node, edge)
    with pytest.raises(VerifyError, match="input ports"):
        verify(g)


def test_verify_catches_types_that_disagree_with_the_shape_rule():
    g, x = graph_with_input()
    y = g.add1("relu", [x])
    g.nx_graph.nodes[y.node]["op"] = Op("relu", {}, (TensorType("float32", ("batch_size", 5)),))
    with pytest.raises(VerifyError, match="shape rule"):
        verify(g)


def test_verify_catches_a_misshapen_weight():
    g = Graph()
    g.add1("param", attrs=dict(name="w", dtype="float32", shape=(3, 4), init="matrix"))
    g.weights["w"] = np.zeros((4, 3), np.float32)
    with pytest.raises(VerifyError, match="has shape"):
        verify(g)


@pytest.mark.parametrize("op, shapes, message", [
    ("add", [(2, 3), (4,)], "broadcast"),
    ("matmul", [(2, 3), (4, 5)], "inner dims"),
    ("attention", [(1, 6, 5, 8), (1, 4, 5, 8), (1, 4, 5, 8)], "multiple"),
])
def test_shape_rules_reject_misfits(op, shapes, message):
    g = Graph()
    values = [g.add1("input", attrs=dict(name=f"x{i}", dtype="float32", shape=s)) for i, s in enumerate(shapes)]
    attrs = {"scale": 1.0, "causal": False} if op == "attention" else {}
    with pytest.raises(OpTypeError, match=message):
        g.add1(op, values, attrs)


def test_symbolic_dims_survive_broadcast_and_reshape():
    g, x = graph_with_input(("batch_size", "sequence_length", 8))
    y = g.add1("reshape", [x], {"shape": (0, 0, 2, 4)})
    assert g.type_of(y).shape == ("batch_size", "sequence_length", 2, 4)
    z = g.add1("add", [y, g.add1("constant", attrs={"value": np.ones((1, 1, 2, 4), np.float32)})])
    assert g.type_of(z).shape == ("batch_size", "sequence_length", 2, 4)


def test_interpreter_matches_onnxruntime_on_a_hand_built_graph():
    g, x = graph_with_input(("batch_size", "sequence_length", 8))
    w = g.add1("param", attrs=dict(name="w", dtype="float32", shape=(8, 8), init="matrix"))
    g.weights["w"] = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    h = g.add1("gelu", [g.add1("matmul", [x, w])], {"approximate": "tanh"})
    scale = g.add1("constant", attrs={"value": np.ones(8, np.float32)})
    g.outputs["y"] = g.add1("rms_norm", [g.add1("softmax", [h]), scale], {"epsilon": 1e-6})
    verify(g)
    feeds = {"x": np.random.default_rng(1).standard_normal((2, 3, 8)).astype(np.float32)}
    want = evaluate(g, feeds)["y"]
    for opset in (17, 23):
        got = run_onnx(to_onnx(g, opset).serialize(), feeds)["y"]
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def chunked_graph(chunk=3):
    """x -> chunks_begin -> matmul by a weight -> relu -> chunks_end: a position-wise region."""
    g, x = graph_with_input(("batch_size", "sequence_length", 8))
    w = g.add1("param", attrs=dict(name="w", dtype="float32", shape=(8, 8), init="matrix"))
    g.weights["w"] = np.random.default_rng(0).standard_normal((8, 8)).astype(np.float32)
    begin = g.add1("chunks_begin", [x], {"chunk": chunk})
    hidden = g.add1("relu", [g.add1("matmul", [begin, w])])
    g.outputs["y"] = g.add1("chunks_end", [hidden, begin])
    return g, x, begin, hidden


@pytest.mark.parametrize("length", [1, 3, 7])
def test_token_chunks_lower_to_a_loop_that_computes_the_region(length):
    g, *_ = chunked_graph()
    verify(g)
    feeds = {"x": np.random.default_rng(length).standard_normal((2, length, 8)).astype(np.float32)}
    model = to_onnx(g, 17).to_proto()
    assert [n.op_type for n in model.graph.node].count("Loop") == 1
    assert "MatMul" not in [n.op_type for n in model.graph.node]  # the region is inside the Loop only
    got = run_onnx(model.SerializeToString(), feeds)["y"]
    np.testing.assert_allclose(got, evaluate(g, feeds)["y"], atol=1e-6, rtol=0)


def test_verify_catches_token_chunks_read_from_outside():
    g, x, begin, hidden = chunked_graph()
    g.outputs["leak"] = g.add1("tanh", [hidden])
    with pytest.raises(VerifyError, match="read outside them"):
        verify(g)


def test_verify_catches_token_chunks_reading_a_computed_value():
    g, x, begin, hidden = chunked_graph()
    y = g.outputs["y"]
    g.outputs["y"] = g.add1("chunks_end", [g.add1("add", [g.inputs_of(y.node)[0], g.add1("tanh", [x])]), begin])
    g.remove(y.node)
    with pytest.raises(VerifyError, match="computed outside them"):
        verify(g)


def test_every_ir_op_has_exactly_one_onnx_lowering():
    """Each lowering module registers the IR ops it lowers (tfcompiler.lower.registry): every op but
    the sources and chunks_end (to_onnx handles those itself) has a lowering, and none lowers an op
    the IR lacks."""
    from tfcompiler.ir.ops import REGISTRY
    from tfcompiler.lower.registry import DIRECT, EMITTERS, register

    lowered = set(EMITTERS) | set(DIRECT)
    assert not set(EMITTERS) & set(DIRECT)
    assert set(REGISTRY) - lowered == {"input", "param", "constant", "chunks_end"}
    assert lowered <= set(REGISTRY)
    with pytest.raises(ValueError, match="two lowerings"):
        register("rope", EMITTERS["rope"])
