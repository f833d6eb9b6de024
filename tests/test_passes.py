"""Each pass: a structural test on a tiny hand-built graph (what changed: which nodes, which
rewritten marks), a no-op test (unchanged graph, a note saying why), and a numeric test (IR before vs
after on random inputs, verify()); the default pipeline on every shipped spec is in test_specs.py. The contract itself
(order checks, requires/ensures, located errors, --explain) is in test_pass_contract.py."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import tiny_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import init_weights
from tfcompiler.cli import main
from tfcompiler.ir import Graph, Value, evaluate, random_feeds, verify
from tfcompiler.lengths import LONG_FROM
from tfcompiler.ir.patterns import Blocks, Window
from tfcompiler.passes import PassError, PassResult, make_pipeline, run_pipeline
from tfcompiler.passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from tfcompiler.passes.eliminate_dead_code import EliminateDeadCode
from tfcompiler.passes.fold_constants import FoldConstants
from tfcompiler.passes.fuse_cached_attention import FuseCachedAttention
from tfcompiler.passes.fuse_skip_norm import FuseSkipNorm
from tfcompiler.passes.pack_projections import PackProjections
from tfcompiler.passes.quantize_weights import QuantizeWeights
from tfcompiler.passes.sparsify_attention import SparsifyAttention
from tfcompiler.language import parse_spec

PASSES = [FoldConstants, EliminateCommonSubexpressions, PackProjections, FuseSkipNorm, FuseCachedAttention,
          EliminateDeadCode]
SIZES = {"batch_size": 2, "sequence_length": 6, "decoder_sequence_length": 5}


def op_counts(graph: Graph) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in graph.nodes():
        counts[graph.op(node).type] = counts.get(graph.op(node).type, 0) + 1
    return counts


def marked(graph: Graph, pass_name: str) -> dict[str, int]:
    """Op counts of the nodes that record ``pass_name`` in rewritten_by."""
    return op_counts_of(graph, [n for n in graph.nodes() if pass_name in graph.op(n).rewritten_by])


def op_counts_of(graph: Graph, nodes) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in nodes:
        counts[graph.op(node).type] = counts.get(graph.op(node).type, 0) + 1
    return counts


def small_graph():
    """y = relu(x) * (2 + 3), plus a duplicate relu(x) and a dead tanh."""
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 4), role="x"))
    two = g.add1("constant", attrs={"value": np.float32(2.0) * np.ones(4, np.float32)})
    three = g.add1("constant", attrs={"value": np.float32(3.0) * np.ones(4, np.float32)})
    a, b = g.add1("relu", [x], origin="block.relu"), g.add1("relu", [x], origin="block.copy")
    g.add1("tanh", [x])
    g.outputs["y"] = g.add1("mul", [g.add1("add", [a, b]), g.add1("add", [two, three], origin="block.bias")])
    return g


def small_feeds():
    return {"x": np.random.default_rng(0).standard_normal((2, 4)).astype(np.float32)}


def test_fold_constants_evaluates_constant_subgraphs():
    g = small_graph()
    before = evaluate(g, small_feeds())
    result = FoldConstants().run(g)
    assert result.changed and "folded 1 node(s) at block.bias" in result.notes[0]
    verify(g)
    assert op_counts(g) == {"input": 1, "constant": 3, "relu": 2, "tanh": 1, "add": 1, "mul": 1}
    (fold,) = [n for n in g.nodes() if "fold_constants" in g.op(n).rewritten_by]
    np.testing.assert_array_equal(g.op(fold).attrs["value"], np.full(4, 5.0, np.float32))
    assert g.op(fold).origin == "block.bias" and marked(g, "fold_constants") == {"constant": 1}
    np.testing.assert_array_equal(evaluate(g, small_feeds())["y"], before["y"])



def test_fold_constants_keeps_a_mask_typed():
    """A bias made from the IR's mask_value stays a `where` over the mask until lowering (a folded
    table would be plain numbers, which a low-precision model could not tell from a mask); its
    constant condition still folds."""
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 4), role="x"))
    span = g.add1("constant", attrs={"value": np.float32(2.0)})
    distance = g.add1("constant", attrs={"value": np.arange(4, dtype=np.float32)})
    outside = g.add1("less", [span, distance], origin="block.span")
    bias = g.add1("where", [outside, g.add1("mask_value", []), g.add1("constant", attrs={"value": np.float32(0)})])
    g.outputs["y"] = g.add1("add", [x, bias])
    before = evaluate(g, small_feeds())
    result = FoldConstants().run(g)
    assert result.changed and "folded 1 node(s) at block.span" in result.notes[0]
    verify(g)
    assert op_counts(g) == {"input": 1, "constant": 4, "mask_value": 1, "where": 1, "add": 1}
    np.testing.assert_array_equal(evaluate(g, small_feeds())["y"], before["y"])

def test_cse_merges_identical_nodes():
    g = small_graph()
    before = evaluate(g, small_feeds())
    result = EliminateCommonSubexpressions().run(g)
    assert result.changed and "1 relu" in result.notes[0] and "from block.copy" in result.notes[0]
    assert op_counts(g)["relu"] == 1
    (add,) = [n for n in g.nodes() if g.op(n).type == "add" and
              g.op(g.inputs_of(n)[0].node).type == "relu"]
    assert g.inputs_of(add)[0] == g.inputs_of(add)[1]  # add(relu, relu) reads the one relu twice
    (kept,) = g.by_type("relu")
    assert g.op(kept).origin == "block.relu" and marked(g, "eliminate_common_subexpressions") == {"relu": 1}
    verify(g)
    np.testing.assert_array_equal(evaluate(g, small_feeds())["y"], before["y"])


def test_dead_code_removes_what_no_output_needs_but_keeps_inputs():
    g = small_graph()
    g.add1("input", attrs=dict(name="unused", dtype="float32", shape=(1,), role="x"))
    before = evaluate(g, small_feeds() | {"unused": np.zeros(1, np.float32)})
    result = EliminateDeadCode().run(g)
    assert result.changed and "1 tanh" in result.notes[0]
    assert op_counts(g) == {"input": 2, "constant": 2, "relu": 2, "add": 2, "mul": 1}
    assert marked(g, "eliminate_dead_code") == {}  # it only removes
    verify(g)
    np.testing.assert_array_equal(evaluate(g, small_feeds() | {"unused": np.zeros(1, np.float32)})["y"], before["y"])


def projections_graph(biases: bool):
    """q, k, v = x @ W (+ b) for three weights, and a fourth matmul on another input."""
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 3, 4), role="x"))
    other = g.add1("input", attrs=dict(name="other", dtype="float32", shape=("batch_size", 3, 4), role="x"))
    outputs = []
    for name, width in (("query", 4), ("key", 2), ("value", 2)):
        w = g.add1("param", attrs=dict(name=f"{name}.weight", dtype="float32", shape=(4, width), init="matrix"))
        y = g.add1("matmul", [x, w])
        if biases:
            y = g.add1("add", [y, g.add1("param", attrs=dict(name=f"{name}.bias", dtype="float32", shape=(width,),
                                                                init="matrix"))])
        outputs.append(y)
        g.outputs[name] = y
    w = g.add1("param", attrs=dict(name="alone.weight", dtype="float32", shape=(4, 4), init="matrix"))
    g.outputs["alone"] = g.add1("matmul", [other, w])
    g.weights = init_weights(g, parse_spec(tiny_spec("encoder", "none")).init, seed=3)
    return g


@pytest.mark.parametrize("biases", [True, False])
def test_pack_projections_makes_one_matmul_of_those_sharing_an_input(biases):
    g = projections_graph(biases)
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 4)).astype(np.float32),
             "other": np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)}
    before = evaluate(g, feeds)
    result = PackProjections().run(g)
    EliminateDeadCode().run(g)
    verify(g)
    assert result.changed and "query+key+value (8 columns" in result.notes[0]
    assert op_counts(g)["matmul"] == 2 and op_counts(g)["split"] == 1
    assert op_counts(g).get("add", 0) == (1 if biases else 0)
    packed_params = 2 if biases else 1  # the packed weight (and bias); the alone matmul stays unmarked
    assert marked(g, "pack_projections") == {"matmul": 1, "split": 1, "param": packed_params} | (
        {"add": 1} if biases else {})
    (packed,) = [n for n in g.by_type("param") if "+" in g.op(n).attrs["name"]][:1]
    assert g.op(packed).attrs["shape"] == (4, 8)
    after = evaluate(g, feeds)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6, atol=1e-6)


def test_pack_projections_keeps_long_activations_unpacked_but_packs_inside_token_chunks():
    """A model whose inputs reach LONG_FROM tokens keeps its Q/K/V projections apart (a split would
    copy long activations) and still packs the gated FFN's gate and up inside its token chunks."""
    spec = tiny_spec("decoder", "none").replace("max_length: 32", f"max_length: {LONG_FROM}").replace(
        "block: {placement: pre}", "block: {placement: pre, ffn: {activation: swiglu, chunk: 4}}")
    g = build_graph(parse_spec(spec))
    result = PackProjections().run(g)
    verify(g)
    assert result.changed and "gate+up" in result.notes[0] and "query" not in result.notes[0]
    assert "left 2 group(s) unpacked: inputs reach 1024 tokens" in result.notes[1]
    short = build_graph(parse_spec(spec.replace(f"max_length: {LONG_FROM}", f"max_length: {LONG_FROM - 1}")))
    assert "query+key+value" in PackProjections().run(short).notes[0]


@pytest.mark.parametrize("kind", ["layer_norm", "rms_norm"])
def test_fuse_skip_norm_joins_a_residual_sum_and_its_norm(kind):
    """y = norm(a + b) and z = (a + b) * 2 become skip_norm(a, b) -> (y, a + b); a bias add does not fuse."""
    g = Graph()
    a, b = (g.add1("input", attrs=dict(name=n, dtype="float32", shape=("batch_size", 3, 4), role="x")) for n in "ab")
    scale = g.add1("param", attrs=dict(name="scale", dtype="float32", shape=(4,), init="ones"))
    bias = g.add1("param", attrs=dict(name="bias", dtype="float32", shape=(4,), init="zeros"))
    total = g.add1("add", [a, b])
    g.outputs["y"] = g.add1(kind, [total, scale], attrs={"epsilon": 1e-5}, origin="block.norm")
    g.outputs["z"] = g.add1("mul", [total, g.add1("constant", attrs={"value": np.float32(2.0)})])
    g.outputs["w"] = g.add1(kind, [g.add1("add", [a, bias]), scale], attrs={"epsilon": 1e-5})
    g.weights = {"scale": 1 + np.arange(4, dtype=np.float32), "bias": np.ones(4, np.float32)}
    feeds = {n: np.random.default_rng(i).standard_normal((2, 3, 4)).astype(np.float32) for i, n in enumerate("ab")}
    before = evaluate(g, feeds)
    result = FuseSkipNorm().run(g)
    verify(g)
    assert result.changed and "fused 1 residual" in result.notes[0] and "at block.norm" in result.notes[0]
    assert op_counts(g)["skip_norm"] == 1 and op_counts(g)["add"] == 1 and op_counts(g)[kind] == 1
    assert "left 1 norm(s): its input is a broadcast add" in result.notes[1]  # w = norm(a + bias)
    (fused,) = g.by_type("skip_norm")
    assert g.op(fused).origin == "block.norm" and marked(g, "fuse_skip_norm") == {"skip_norm": 1}
    assert g.outputs["y"] == Value(fused, 0) and g.inputs_of(g.outputs["z"].node)[0] == Value(fused, 1)
    after = evaluate(g, feeds)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])


def test_quantize_weights_replaces_weight_matmuls_and_marks_them():
    """x @ W (W a 2-D param) becomes quantized_matmul with int8 values and scales; x @ x stays."""
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 4), role="x"))
    w = g.add1("param", attrs=dict(name="proj.weight", dtype="float32", shape=(4, 4), init="matrix"))
    y = g.add1("matmul", [x, w], origin="block.proj", label="Proj")
    g.outputs["y"] = g.add1("matmul", [y, g.add1("transpose", [x], attrs={"perm": (1, 0)})])
    g.weights = {"proj.weight": np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)}
    feeds = {"x": np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)}
    before = evaluate(g, feeds)
    result = QuantizeWeights(8).run(g)
    EliminateDeadCode().run(g)
    verify(g)
    assert result.changed and "quantized 1 linear map(s)" in result.notes[0] and "at block.proj" in result.notes[0]
    assert "left 1 matmul(s): its right operand is not a 2-D float32 weight" in result.notes[1]
    (q,) = g.by_type("quantized_matmul")
    assert g.op(q).origin == "block.proj" and g.op(q).label == "Proj"
    assert marked(g, "quantize_weights") == {"quantized_matmul": 1, "param": 2}
    assert [g.op(n).attrs["name"] for n in g.by_type("param")] == ["proj.weight.int8", "proj.weight.scale"]
    after = evaluate(g, feeds)["y"]
    assert np.linalg.norm(after - before["y"]) <= QuantizeWeights.BUDGETS[8] * np.linalg.norm(before["y"])


def test_sparsify_attention_replaces_a_windowed_attention_and_marks_it():
    g = Graph()
    q, k, v = (g.add1("input", attrs=dict(name=n, dtype="float32", role=n,
                                          shape=("batch_size", 2, "sequence_length", 4))) for n in "qkv")
    attrs = dict(scale=0.5, causal=True, softcap=0.0, pattern=Window(back=2, ahead=2))
    g.outputs["y"] = g.add1("attention", [q, k, v], attrs, origin="decoder.layers.0.attention", label="Attn")
    feeds = {n: np.random.default_rng(i).standard_normal((1, 2, 7, 4)).astype(np.float32) for i, n in enumerate("qkv")}
    before = evaluate(g, feeds)
    result = SparsifyAttention().run(g)
    verify(g)
    assert result.changed and result.notes[0].startswith("decoder.layers.0.attention: Window(")
    (band,) = g.by_type("banded_attention")
    assert op_counts(g) == {"input": 3, "banded_attention": 1}
    assert g.op(band).attrs["block"] == 2 and g.op(band).attrs["ahead_blocks"] == 0  # causal: no keys ahead
    assert marked(g, "sparsify_attention") == {"banded_attention": 1} and g.op(band).label == "BandedAttention"
    np.testing.assert_allclose(evaluate(g, feeds)["y"], before["y"], atol=1e-6, rtol=0)


def test_sparsify_attention_says_why_each_rewrite_does_not_match():
    """Cross-attention (queries and keys of different lengths) keeps the dense masked form; the note
    gives every rewrite of the pattern's type its reason, and the graph is unchanged."""
    g = Graph()
    q = g.add1("input", attrs=dict(name="q", dtype="float32", role="q", shape=("batch_size", 2, "sequence_length", 4)))
    k, v = (g.add1("input", attrs=dict(name=n, dtype="float32", role=n, shape=("batch_size", 2, "memory_length", 4)))
            for n in "kv")
    layout = tuple(tuple(abs(a - b) <= 1 for b in range(6)) for a in range(6))
    for layer in range(2):
        attrs = dict(scale=0.5, causal=False, softcap=0.0, pattern=Blocks(2, layout))
        g.outputs[f"y{layer}"] = g.add1("attention", [q, k, v], attrs, origin=f"decoder.layers.{layer}.cross_attention")
    before = g.describe()
    result = SparsifyAttention().run(g)
    assert not result.changed and g.describe() == before
    assert result.notes == ["decoder.layers.0..1.cross_attention: Blocks(block=2, 6x6 layout) stays dense masked "
                            "(gathered key blocks: keys and queries differ in length; "
                            "banded blocks: keys and queries differ in length)"]


@pytest.mark.parametrize("pass_class, word", [(FoldConstants, "nothing to fold"),
                                              (EliminateCommonSubexpressions, "nothing to merge"),
                                              (SparsifyAttention, "no attention has a sparse pattern"),
                                              (PackProjections, "nothing to pack"),
                                              (FuseSkipNorm, "nothing to fuse"),
                                              (FuseCachedAttention, "nothing to fuse"),
                                              (QuantizeWeights, "nothing to quantize"),
                                              (EliminateDeadCode, "nothing to remove")])
def test_a_pass_with_nothing_to_do_leaves_the_graph_unchanged(pass_class, word):
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=(2,), role="x"))
    g.outputs["y"] = g.add1("tanh", [g.add1("relu", [x])])
    before = g.describe()
    result = pass_class().run(g)
    assert not result.changed and word in result.notes[0]
    assert g.describe() == before and not marked(g, pass_class.name)


def built(spec_text: str):
    spec = parse_spec(spec_text)
    graph = build_graph(spec)
    graph.weights = init_weights(graph, spec.init, seed=0)
    return graph


@pytest.mark.parametrize("pass_class", PASSES)
@pytest.mark.parametrize("topology, positional", [("encoder", "sinusoidal"), ("decoder", "learned"),
                                                  ("encoder-decoder", "sinusoidal")])
def test_pass_preserves_numerics_on_real_blocks(pass_class, topology, positional):
    graph = built(tiny_spec(topology, positional, head="none" if topology == "encoder" else "lm"))
    feeds = random_feeds(graph, SIZES, seed=1, pad_last=2)
    before = evaluate(graph, feeds)
    result = pass_class().run(graph)
    verify(result.graph)
    after = evaluate(result.graph, feeds)
    for name in before:  # packing sums the same products in one wider GEMM: equal up to rounding
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-6)


def test_pipeline_finds_work_on_a_real_model():
    graph = built(tiny_spec("encoder-decoder", "sinusoidal"))
    graph, report = run_pipeline(graph, make_pipeline(), verify_each=True)
    # table folded, masks merged, no sparse pattern, projections packed, residuals fused, no cache, old params dropped
    assert [r.changed for r in report.records] == [True, True, False, True, True, False, True]
    assert "padding_bias" in report.records[1].notes[0]
    assert len(graph.by_type("padding_bias")) == 2  # one per stack's mask input


CACHED = """
tfc: 1
name: cached
topology: decoder
model: {width: 32, heads: 4, kv_heads: 2, ffn_width: 48, vocab_size: 50, max_length: 32, bias: false}
positional: {kind: rope, layout: interleaved, rotary_dim: 6}
block: {placement: pre, norm: {kind: rms_norm}, ffn: {activation: swiglu}ATTENTION}
decoder: {layers: 2}
head: {kind: lm, tied: false}
"""


@pytest.mark.parametrize("attention, fused", [("", 2), (", attention: {kind: sliding_window, window: 3}", 0)])
def test_fuse_cached_attention_takes_the_whole_chain_or_says_why_not(attention, fused):
    """A cached decoder's split heads, rotation, cache append, attention and merge become one op with the
    same numbers; a sliding window's patterned attention is not the chain, and the pass says so."""
    spec = parse_spec(CACHED.replace("ATTENTION", attention))
    graph = build_graph(spec, cache=True)
    graph.weights = init_weights(graph, spec.init, seed=0)
    graph = PackProjections().run(graph).graph
    feeds = random_feeds(graph, {**SIZES, "past_sequence_length": 3}, seed=2, pad_last=2)
    before = evaluate(graph, feeds)
    result = FuseCachedAttention().run(graph)
    verify(result.graph)
    assert len(result.graph.by_type("cached_attention")) == fused and result.changed == bool(fused)
    assert ("fused 2 cached attention chain(s) at decoder.layers.0..1.attention" in result.notes[0] if fused else
            "not dense causal attention" in " ".join(result.notes))
    after = evaluate(result.graph, feeds)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], rtol=1e-5, atol=1e-6)


def test_numeric_check_names_a_pass_that_changes_results():
    """The failure names the pass, the output, and the node the pass made that the first moved value reads."""
    class Breaks(FoldConstants):
        name = "breaks_things"

        def rewrite(self, graph):
            (relu,) = graph.by_type("relu")
            graph.replace(relu, "tanh")
            return PassResult(graph, True, ["replaced relu by tanh"])

    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=(3,), role="x"))
    g.outputs["y"] = g.add1("neg", [g.add1("relu", [x], origin="decoder.layers.3.ffn")], origin="decoder.output")
    with pytest.raises(PassError, match="breaks_things.*moved") as error:
        run_pipeline(g, [Breaks()], check_feeds={"x": np.array([-1.0, 0.5, 2.0], np.float32)})
    assert str(error.value).startswith("pass breaks_things failed at /decoder/layers/3/ffn: output 'y' moved by ")


def test_explain_prints_every_pass_and_its_note(tmp_path, capsys):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(tiny_spec("decoder", "none"))
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "--explain", "-q"]) == 0
    out = capsys.readouterr().out
    assert "fold_constants: unchanged" in out and "nothing to fold" in out
    assert "eliminate_common_subexpressions: changed" in out and "merged" in out
    assert "pack_projections: changed" in out and "query+key+value" in out
    assert "eliminate_dead_code: changed" in out  # the packed projections' own weights
    # per pass, the nodes it made or marked, counted by op type over a span of spec origins
    assert ("rewrote 4 skip_norm at decoder.final_norm, decoder.layers.1.attention_norm, "
            "decoder.layers.0..1.ffn_norm") in out
    assert "rewrote 2 split at decoder.layers.0..1.attention.query" in out


def test_compile_spec_refuses_a_dump_after_that_would_print_nothing():
    """The Python API checks --dump-after's names as the CLI does."""
    from tfcompiler import compile_spec
    from tfcompiler.errors import TfcError

    spec = parse_spec(tiny_spec("decoder"))
    with pytest.raises(TfcError, match="no such pass; did you mean fold_constants"):
        compile_spec(spec, dump_after={"fold_constant"})
    with pytest.raises(TfcError, match="does not run with these flags"):
        compile_spec(spec, dump_after={"fold_constants"}, pipeline="none")
    assert "fold_constants" in compile_spec(spec, dump_after={"fold_constants"}).report.dumps
