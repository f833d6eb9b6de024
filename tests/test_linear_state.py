"""Linearised attention's running sums as a decoder's state (tfcompiler.ir.ops.linear, .favor): a
sequence taken in pieces, each from the sums the last one returned, computes what the whole does; and
the ONNX lowerings (chunks of 64 on the portable target, onnxruntime's LinearAttention on ort-cpu)
compute what the NumPy semantics do from given sums, across chunk boundaries."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import run_onnx
from tfcompiler.ir import Graph, evaluate, verify
from tfcompiler.ir.ops import OpTypeError
from tfcompiler.ir.ops.favor import favor_attention
from tfcompiler.ir.ops.linear import linear_attention
from tfcompiler.lower import to_onnx

B, H, HKV, F, DV, DH, M = 2, 4, 2, 5, 3, 6, 7
PIECES = (4, 1, 70, 1, 3)  # the third crosses a chunk boundary of the lowering


def arrays(length: int, seed: int, gated: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {"q": np.abs(rng.standard_normal((B, H, length, F))), "k": np.abs(rng.standard_normal((B, HKV, length, F))),
             "v": rng.standard_normal((B, HKV, length, DV))}
    if gated:
        feeds["gate"] = 2 * rng.standard_normal((B, H, length))
    return {name: value.astype(np.float32) for name, value in feeds.items()}


def piece(feeds: dict, start: int, end: int) -> dict:
    return {name: value[:, :, start:end] for name, value in feeds.items()}


def in_pieces(attend, feeds, past):
    """attend(feeds of a piece, past) -> (out, *sums): the pieces' outputs joined, and the last sums."""
    outputs, start = [], 0
    for size in PIECES:
        out, *past = attend(piece(feeds, start, start + size), past)
        outputs.append(out)
        start += size
    return np.concatenate(outputs, axis=2), past


@pytest.mark.parametrize("gated", [False, True])
def test_linear_attention_in_pieces_is_the_whole(gated):
    feeds = arrays(sum(PIECES), 0, gated)
    whole = linear_attention(feeds["q"], feeds["k"], feeds["v"], True, 1e-6, feeds.get("gate"))
    zeros = [np.zeros((B, H, F, DV), np.float32), np.zeros((B, H, F), np.float32)]
    got, sums = in_pieces(lambda f, past: linear_attention(f["q"], f["k"], f["v"], True, 1e-6, f.get("gate"), past),
                          feeds, zeros)
    np.testing.assert_allclose(got, whole, atol=1e-5, rtol=0)
    _, last_kv, last_k = linear_attention(feeds["q"], feeds["k"], feeds["v"], True, 1e-6, feeds.get("gate"), zeros)
    np.testing.assert_allclose(sums[0], last_kv, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(sums[1], last_k, atol=1e-5, rtol=1e-5)


def test_favor_attention_in_pieces_is_the_whole():
    """The pieces' keys are stabilised by the running maximum, the whole's by its own: the same output."""
    rng = np.random.default_rng(1)
    length = sum(PIECES)
    q, k, v = (rng.standard_normal((B, h, length, DH)).astype(np.float32) for h in (H, HKV, HKV))
    features = rng.standard_normal((M, DH)).astype(np.float32)
    whole = favor_attention(q, k, v, features, causal=True)
    zeros = [np.zeros((B, H, M, DH), np.float32), np.zeros((B, H, M), np.float32), np.zeros((B, H), np.float32)]
    got, (_, _, k_max) = in_pieces(lambda f, past: favor_attention(f["q"], f["k"], f["v"], features, causal=True,
                                                                   past=past), {"q": q, "k": k, "v": v}, zeros)
    np.testing.assert_allclose(got, whole, atol=1e-5, rtol=0)
    assert k_max.shape == (B, H)


def linear_graph(gated: bool) -> Graph:
    g = Graph()

    def read(name, shape):
        return g.add1("input", attrs=dict(name=name, dtype="float32", shape=shape, role=name))

    q, k, v = (read(name, ("batch_size", heads, "sequence_length", width))
               for name, heads, width in (("q", H, F), ("k", HKV, F), ("v", HKV, DV)))
    gate = [read("gate", ("batch_size", H, "sequence_length"))] if gated else []
    past = [read("kv_sum", ("batch_size", H, F, DV)), read("k_sum", ("batch_size", H, F))]
    out, kv_sum, k_sum = g.add("linear_attention", [q, k, v, *gate, *past], dict(causal=True, eps=1e-6, stateful=True))
    g.outputs.update({"out": out, "present_kv_sum": kv_sum, "present_k_sum": k_sum})
    verify(g)
    return g


@pytest.mark.parametrize("target", ["portable", "ort-cpu"])
@pytest.mark.parametrize("gated", [False, True])
def test_lowered_linear_attention_from_past_sums(gated, target):
    """From random past sums, at lengths of one step, one partial chunk and three chunks (the last
    partial), the ONNX model's output and sums are the NumPy semantics'."""
    graph = linear_graph(gated)
    model = to_onnx(graph, 23, target=target).serialize()
    rng = np.random.default_rng(2)
    for length in (1, 9, 150):
        feeds = {**arrays(length, length, gated), "kv_sum": rng.standard_normal((B, H, F, DV)).astype(np.float32),
                 "k_sum": np.abs(rng.standard_normal((B, H, F))).astype(np.float32)}
        want, got = evaluate(graph, feeds), run_onnx(model, feeds)
        for name in ("out", "present_kv_sum", "present_k_sum"):
            scale = max(1.0, float(np.abs(want[name]).max()))
            assert float(np.abs(got[name] - want[name]).max()) <= 1e-4 * scale, (name, length)


def test_past_sums_need_causal_attention_and_their_shapes():
    graph = linear_graph(False)
    q, k, v, kv_sum, k_sum = [node for node in graph.graph_inputs()]
    values = [graph.outputs["out"].__class__(node, 0) for node in (q, k, v, kv_sum, k_sum)]
    with pytest.raises(OpTypeError, match="past sums need causal attention"):
        graph.add("linear_attention", values, dict(causal=False, eps=0.0, stateful=True))
    with pytest.raises(OpTypeError, match="past sums need causal attention"):
        graph.add("linear_attention", [*values[:3], values[4], values[3]], dict(causal=True, eps=0.0, stateful=True))
