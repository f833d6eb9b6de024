"""The sparsity pass: bounded sparse patterns become banded attention, which equals the dense
masked attention — in the IR (NumPy, the blocked algorithm against the dense op) and in the ONNX
lowering on onnxruntime — for lengths that are and are not multiples of the block, causal and
bidirectional, with padding and grouped-query heads; unbounded patterns stay dense and say why;
global tokens become dense rows and extra columns; block layouts with random blocks gather their key
blocks; a graph without patterns is left unchanged."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from conftest import onnx_runner
from tfcompiler.ir import Graph, evaluate, verify
from tfcompiler.ir.ops.banded import banded_attention
from tfcompiler.ir.ops.nn import MASKED, attention_reference
from tfcompiler.ir.patterns import Blocks, Fixed, Local2D, Strided, Window, WithGlobal
from tfcompiler.lower import to_onnx
from tfcompiler.passes.sparsify_attention import SparsifyAttention

WINDOW = Window(back=3, ahead=3)
BANDED = [WINDOW, Window(back=4, ahead=0), Window(back=4, ahead=4, dilation=2), Window(back=2, ahead=5),
          Blocks(3, tuple(tuple(abs(a - b) <= 1 for b in range(8)) for a in range(8))),
          WithGlobal(WINDOW, 2), WithGlobal(Window(back=3, ahead=0), 1),
          Local2D(width=4, rows=2, cols=2, above=1, below=1, side=1),
          Local2D(width=5, rows=1, cols=3, above=2, below=0, side=1)]
SPARSIFIED = BANDED + [Fixed(stride=4, summary=2), Fixed(stride=3, summary=2),  # block summaries
                       Strided(3), Strided(5)]  # bands with strided columns


def attention_graph(pattern, causal: bool, kv_heads: int = 2, bias: bool = True) -> Graph:
    g = Graph()

    def tensor(name, heads, shape=None):
        return g.add1("input", attrs=dict(name=name, dtype="float32", role=name,
                                          shape=shape or ("batch_size", heads, "sequence_length", 8)))

    inputs = [tensor("q", 4), tensor("k", kv_heads), tensor("v", kv_heads)]
    if bias:
        inputs.append(tensor("bias", 1, ("batch_size", 1, 1, "sequence_length")))
    g.outputs["y"] = g.add1("attention", inputs, dict(scale=0.35, causal=causal, softcap=0.0, pattern=pattern))
    return g


def feeds(length: int, kv_heads: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    bias = np.zeros((2, 1, 1, length), np.float32)
    if length > 3:
        bias[0, ..., length - 2:] = MASKED  # padded keys (no query loses every key)
    return {"q": rng.standard_normal((2, 4, length, 8)).astype(np.float32),
            "k": rng.standard_normal((2, kv_heads, length, 8)).astype(np.float32),
            "v": rng.standard_normal((2, kv_heads, length, 8)).astype(np.float32), "bias": bias}


@pytest.mark.parametrize("bias", [True, False], ids=["key_bias", "no_bias"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("pattern", SPARSIFIED, ids=str)
def test_sparsified_attention_equals_dense_masked_attention(pattern, causal, bias):
    graph = attention_graph(pattern, causal, bias=bias)
    result = SparsifyAttention().run(graph)
    assert result.changed and any(word in result.notes[0] for word in ("banded", "gathered", "summary"))
    kinds = [graph.op(n).type for n in graph.nodes()]
    assert sum(kinds.count(k) for k in ("banded_attention", "block_sparse_attention", "block_summary_attention")) == 1
    verify(graph)
    runners = {opset: onnx_runner(to_onnx(graph, opset).serialize()) for opset in (17, 23)}
    for length in (1, 5, 12, 13):
        x = feeds(length)
        if not bias:
            del x["bias"]
        want = attention_reference(x["q"], x["k"], x["v"], x.get("bias"), 0.35, causal, 0.0, pattern)
        np.testing.assert_allclose(evaluate(graph, x)["y"], want, atol=1e-6, rtol=0)
        for run in runners.values():
            np.testing.assert_allclose(run(x)["y"], want, atol=1e-5, rtol=0)


def test_banded_numpy_algorithm_is_exact_against_the_dense_formula():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, 17, 4)) for _ in range(3))
    for pattern in BANDED:
        band, g = (pattern.base, pattern.tokens) if isinstance(pattern, WithGlobal) else (pattern, 0)
        back, ahead = band.reach()
        block = max(back, ahead, 1)
        got = banded_attention(q, k, v, None, 0.5, False, 0.0, band, block, -(-back // block), -(-ahead // block), g)
        want = attention_reference(q, k, v, None, 0.5, False, 0.0, pattern)
        np.testing.assert_allclose(got, want, atol=1e-12, rtol=0)


def bigbird(causal: bool, global_blocks: int) -> Blocks:
    from tfcompiler.builders.attention.bigbird import BigBirdOptions, bigbird_layout

    options = BigBirdOptions(block=2, window_blocks=3, global_blocks=global_blocks, random_blocks=1, seed=5)
    layout = bigbird_layout(options, 40, causal, "layer")
    return Blocks(2, tuple(tuple(bool(x) for x in row) for row in layout))


@pytest.mark.parametrize("causal, global_blocks, trailing", [  # causal trailing blocks stay dense (below)
    (False, 0, 0), (False, 1, 0), (True, 0, 0), (True, 1, 0), (False, 1, 1), (False, 0, 2)])
def test_block_layouts_gather_their_key_blocks_and_equal_dense(causal, global_blocks, trailing):
    pattern = replace(bigbird(causal, global_blocks), trailing=trailing)
    graph = attention_graph(pattern, causal)
    result = SparsifyAttention().run(graph)
    assert result.changed and "gathered key blocks" in result.notes[0], result.notes
    assert [graph.op(n).type for n in graph.nodes()].count("block_sparse_attention") == 1
    verify(graph)
    runners = {opset: onnx_runner(to_onnx(graph, opset).serialize()) for opset in (17, 23)}
    for length in (1, 7, 12, 13):
        x = feeds(length)
        want = attention_reference(x["q"], x["k"], x["v"], x["bias"], 0.35, causal, 0.0, pattern)
        np.testing.assert_allclose(evaluate(graph, x)["y"], want, atol=1e-6, rtol=0)
        for run in runners.values():
            np.testing.assert_allclose(run(x)["y"], want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pattern, causal, why", [
    (WithGlobal(Strided(3), 1), False, "unbounded"),
    (replace(bigbird(True, 1), trailing=1), True, "causal trailing global blocks")],
    ids=["strided_with_global", "causal_trailing_global_blocks"])
def test_unbounded_patterns_stay_dense_and_say_why(pattern, causal, why):
    graph = attention_graph(pattern, causal)
    before = graph.describe()
    result = SparsifyAttention().run(graph)
    assert not result.changed and why in result.notes[0]
    assert graph.describe() == before
    run = onnx_runner(to_onnx(graph, 17).serialize())
    for length in (5, 12, 13):  # the dense masked form (trailing blocks: global wherever the input ends)
        x = feeds(length)
        want = attention_reference(x["q"], x["k"], x["v"], x["bias"], 0.35, causal, 0.0, pattern)
        np.testing.assert_allclose(run(x)["y"], want, atol=1e-5, rtol=0)


def test_a_graph_without_patterns_is_left_unchanged():
    graph = attention_graph(None, True)
    for node in graph.nodes():
        if graph.op(node).type == "attention":
            graph.op(node).attrs.pop("pattern")
    before = graph.describe()
    result = SparsifyAttention().run(graph)
    assert not result.changed and "no attention has a sparse pattern" in result.notes[0]
    assert graph.describe() == before
