"""Every positional scheme that acts inside attention, with keys longer than queries: the queries
are the last S of T positions (a KV cache or a memory in front of the segment). One self-attention
is built from the scheme alone — queries, keys and values are graph inputs of lengths S and T — then
compiled to ONNX and run on onnxruntime, against the NumPy reference of the paper with the same
offset. Causal and bidirectional where the scheme allows both; two (S, T) pairs per case."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import onnx_runner
from reference import Reference
from test_components import unit_scale_weights
from tfcompiler import parse_spec
from tfcompiler.builders.attention.parts import AttentionParts, Site, emit_attention
from tfcompiler.builders.context import Context
from tfcompiler.builders.weights import declared_params
from tfcompiler.lower import to_onnx
from tfcompiler.language.kinds import POSITIONS

HEADS, KV_HEADS, HEAD_WIDTH = 4, 2, 8
SCHEMES = {
    "rope": "{kind: rope, rotary_dim: 6}",
    "alibi": "{kind: alibi}",
    "alibi_symmetric": "{kind: alibi, form: symmetric}",
    "t5": "{kind: t5, num_buckets: 8, max_distance: 10}",
    "shaw": "{kind: shaw, max_distance: 3}",
    "transformer_xl": "{kind: transformer_xl}",
    "music": "{kind: music, max_distance: 9}",
    "deberta": "{kind: deberta, position_buckets: 6, max_relative_positions: 12}",
}
LENGTHS = [(3, 7), (5, 14)]  # (queries S, keys T)


def scheme_spec(positional: str, kv_heads: int):
    topology = "decoder"
    return parse_spec(f"""
tfc: 1
name: offset
topology: {topology}
model: {{width: 32, heads: {HEADS}, kv_heads: {kv_heads}, ffn_width: 48, vocab_size: 50, max_length: 40}}
positional: {positional}
decoder: {{layers: 1}}
""")


def build_attention(spec, causal: bool):
    """One attention over input heads, named like layer 0 of the decoder."""
    ctx = Context()
    m = spec.model
    q = ctx.input("query", "float32", ("batch_size", m.heads, "sequence_length", HEAD_WIDTH), "query")
    k = ctx.input("key", "float32", ("batch_size", m.kv, "total_length", HEAD_WIDTH), "key")
    v = ctx.input("value", "float32", ("batch_size", m.kv, "total_length", HEAD_WIDTH), "value")
    positions = ctx.input("positions", "int64", (1, "sequence_length"), "positions")
    site = Site(q, q, None, causal, positions, spec.positional, {"stack": "decoder"},
                key_positions=ctx.op("positions", k, axis=2))
    with ctx.at("decoder", "layers", 0, "attention"):
        parts = AttentionParts(q, k, v, scale=HEAD_WIDTH ** -0.5, causal=causal)
        scheme = POSITIONS.builder(spec.positional)
        for step in (scheme.rotate, scheme.attend):  # rotary acts on new keys, biases on all of them
            parts = step(ctx, spec.positional, spec, parts, site) if step is not None else parts
        ctx.graph.outputs["context"] = emit_attention(ctx, parts)[0]
    return ctx.graph


@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_scheme_holds_when_keys_outnumber_queries(scheme, causal):
    if scheme == "music" and not causal:
        pytest.skip("the Music Transformer's relative attention is causal only")
    kv_heads = HEADS if scheme == "deberta" else KV_HEADS
    spec = scheme_spec(SCHEMES[scheme], kv_heads)
    graph = build_attention(spec, causal)
    graph.weights.update(unit_scale_weights(declared_params(graph)))
    block = spec.decoder_blocks[0]
    rng = np.random.default_rng(0)
    reference = Reference(spec, graph.weights)
    for opset in (17, 23):
        run = onnx_runner(to_onnx(graph, opset).serialize())  # one session for every length
        for s, t in LENGTHS:
            feeds = {"query": rng.standard_normal((2, HEADS, s, HEAD_WIDTH)).astype(np.float32),
                     "key": rng.standard_normal((2, kv_heads, t, HEAD_WIDTH)).astype(np.float32),
                     "value": rng.standard_normal((2, kv_heads, t, HEAD_WIDTH)).astype(np.float32),
                     "positions": np.arange(t - s, t)[None]}
            got = run(feeds)["context"]
            want = reference.attend(*(feeds[n].astype(np.float64) for n in ("query", "key", "value")),
                                    None, causal, block.attention, "decoder.layers.0.attention",
                                    spec.positional, "decoder", {})
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0, err_msg=f"{scheme} S={s} T={t} opset {opset}")
