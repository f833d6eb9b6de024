"""`--quantize int8 | int4`: the quantized ops' NumPy semantics equal their ONNX lowerings (int8:
standard DynamicQuantizeLinear + MatMulInteger, and com.microsoft DynamicQuantizeMatMul on ort-cpu;
int4: MatMulNBits on ort-cpu, DequantizeLinear with 4-bit blocks + MatMul elsewhere); weights
round-trip within half a step in both int4 layouts; whole compiled models stay within the accuracy
budget of the NumPy paper reference; the pipeline checks the pass against that budget; output is
deterministic; standard-op int4 needs opset 21."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from reference import Reference
from test_components import feeds_for, random_weights, spec_text
from tfcompiler import compile_spec, parse_spec
from tfcompiler.cli import main
from tfcompiler.ir import Graph
from tfcompiler.lower.to_onnx import to_onnx
from tfcompiler.errors import TfcError
from tfcompiler.inspection import every_node
from tfcompiler.ir.ops.quantized import unpack_int4
from tfcompiler.passes.quantize_weights import BLOCK, LEVELS, QuantizeWeights, quantize, quantize_int4
from tfcompiler.ir.interpret import evaluate


def test_weights_round_trip_within_half_a_step():
    weight = np.random.default_rng(0).standard_normal((64, 24)).astype(np.float32)
    weight[:, 3] = 0.0  # an all-zero column keeps a usable scale
    values, scales = quantize(weight)
    assert values.dtype == np.int8 and np.abs(values).max() == LEVELS and np.all(scales > 0)
    assert np.all(np.abs(weight - values * scales) <= scales / 2 + 1e-7)


@pytest.mark.parametrize("layout, packed_shape, scales_shape", [("nbits", (5, 3, BLOCK // 2), (5, 3)),
                                                                  ("rows", ((71 * 5 + 1) // 2,), (3, 5))])
def test_int4_weights_round_trip_within_half_a_step_of_their_block(layout, packed_shape, scales_shape):
    weight = np.random.default_rng(4).standard_normal((71, 5)).astype(np.float32)  # K not a multiple of 32, K·N odd
    packed, scales = quantize_int4(weight, layout)
    assert packed.shape == packed_shape and scales.shape == scales_shape
    restored = unpack_int4(packed, scales, 71, layout)
    per_row = np.repeat(scales.T if layout == "nbits" else scales, BLOCK, axis=0)[:71]  # each weight's block scale
    assert np.all(np.abs(weight - restored) <= per_row / 2 + 1e-6)


def test_standard_op_int4_needs_opset_21():
    with pytest.raises(TfcError, match="needs --opset 21"):
        compile_spec(parse_spec(spec_text("bert_like_encoder")), quantize="int4", opset=20)


@pytest.mark.parametrize("target, bits", [("portable", 8), ("ort-cpu", 8), ("ort-cpu", 4), ("portable", 4)])
def test_quantized_matmul_lowerings_match_its_numpy_semantics(target, bits):
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 5, 48), role="x"))
    w = g.add1("param", attrs=dict(name="w", dtype="float32", shape=(48, 8), init="matrix"))
    g.outputs["y"] = g.add1("matmul", [x, w])
    g.weights = {"w": np.random.default_rng(1).standard_normal((48, 8)).astype(np.float32)}
    assert QuantizeWeights(bits, "nbits" if target == "ort-cpu" else "rows").run(g).changed
    for node in [n for n in g.nodes() if g.op(n).type == "param" and g.op(n).attrs["name"] == "w"]:
        g.remove(node)
    rng = np.random.default_rng(2)
    for x_value in (rng.standard_normal((2, 5, 48)) * 3, np.abs(rng.standard_normal((1, 5, 48)))):
        x_value = x_value.astype(np.float32)
        want = evaluate(g, {"x": x_value}, {k: np.asarray(v) for k, v in g.weights.items()})["y"]
        model = to_onnx(g, 21, target=target)
        options = ort.SessionOptions()  # as written: onnxruntime would fuse 4-bit DequantizeLinear + MatMul into
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # MatMulNBits (int8 products)
        session = ort.InferenceSession(model.serialize(), options, providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x_value})[0]
        if bits == 4:  # weight-only: the same dequantized weights, fp32 products
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
            continue
        step = (max(x_value.max(), 0) - min(x_value.min(), 0)) / 255
        # one activation step either way where x / step sits on a rounding boundary in float32
        assert np.abs(got - want).max() <= step * np.abs(np.asarray(g.weights["w.int8"]) * np.asarray(
            g.weights["w.scale"])).sum(0).max() + 1e-5


@pytest.mark.parametrize("case, bits, target", [
    ("bert_like_encoder", 8, "portable"), ("llama_like_decoder_gqa", 8, "portable"),
    ("paper_encoder_decoder", 8, "portable"), ("multi_query_decoder", 8, "portable"),
    ("bert_like_encoder", 4, "ort-cpu"), ("multi_query_decoder", 4, "ort-cpu"),
    ("bert_like_encoder", 4, "portable"), ("llama_like_decoder_gqa", 4, "portable"),
    ("llama_like_chunked_swiglu", 8, "portable"), ("llama_like_chunked_swiglu", 4, "ort-cpu"),
    ("llama_like_chunked_swiglu", 4, "portable")])
def test_quantized_models_stay_within_the_budget_of_the_fp32_reference(case, bits, target, tmp_path):
    spec = parse_spec(spec_text(case), f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"), quantize=f"int{bits}", check_numerics=True,
                            target=target, opset=21)
    kernel = {8: "MatMulInteger", 4: "MatMulNBits" if target == "ort-cpu" else "DequantizeLinear"}[bits]
    assert any(n.op_type == kernel for n in every_node(compiled.model.proto.graph))  # token chunks' Loops too
    if "chunk" in spec_text(case):  # 4-bit DequantizeLinear stays out of Loops: onnxruntime fuses it only outside
        loops = [n for n in compiled.model.proto.graph.node if n.op_type == "Loop"]
        assert bool(loops) == (kernel != "DequantizeLinear")
    if spec.head.kind == "lm" and spec.head.tied:  # the tied head is quantized too, the embedding kept
        names = {name for name, _ in compiled.model.initializers}
        assert f"embeddings.tokens.weight.T.int{bits}" in names and "embeddings.tokens.weight" in names
    session = ort.InferenceSession(compiled.model.serialize(), providers=["CPUExecutionProvider"])
    feeds = feeds_for(session, 3, 11, 4, spec.model.vocab_size, seed=3)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
    want = Reference(spec, weights)(feeds)
    for name in want:  # padded rows included: they are computed the same way
        a, b = got[name].astype(np.float64).ravel(), want[name].ravel()
        assert np.linalg.norm(a - b) <= QuantizeWeights.BUDGETS[bits] * np.linalg.norm(b), name


def test_weights_shared_by_several_matmuls_are_quantized_once(tmp_path):
    """Hi-Transformer's attention pooling reuses one weight in every layer: one int8 tensor each."""
    from conftest import ROOT

    model = compile_spec(ROOT / "specs" / "hi-transformer.yaml", target="ort-cpu", quantize="int8").model
    names = [name for name, _ in model.initializers]
    assert len(names) == len(set(names))
    assert "document.pooling.attention.output.weight.int8" in names


def test_compile_quantize_explains_and_is_deterministic(tmp_path, capsys):
    spec = tmp_path / "bert.yaml"
    spec.write_text(spec_text("bert_like_encoder"))
    outputs = []
    for i in range(2):
        out = tmp_path / f"q{i}.onnx"
        assert main(["compile", str(spec), "-o", str(out), "--quantize", "int8", "--verify", "--explain", "-q"]) == 0
        outputs.append(out.read_bytes())
    report = capsys.readouterr().out
    assert "quantize_weights: changed" in report and "to int8 weights" in report and "quantized int8" in report
    assert outputs[0] == outputs[1]


@pytest.mark.parametrize("target, quantize", [("portable", "int8"), ("ort-cpu", "int8"), ("ort-cpu", "int4"),
                                              ("portable", "int4")])
def test_inspect_counts_the_quantized_matmuls(target, quantize, tmp_path):
    from tfcompiler.inspection import inspect_model

    spec = parse_spec(spec_text("bert_like_encoder"))
    flops = {}
    for q in ("none", quantize):
        compile_spec(spec, target=target, quantize=q, opset=21).model.save(tmp_path / f"{q}.onnx")
        flops[q] = inspect_model(str(tmp_path / f"{q}.onnx"))["weight_flops_per_token"]
    assert flops[quantize] == flops["none"] > 0


def test_onnxruntime_runs_standard_int4_as_matmul_nbits(tmp_path):
    """The portable int4 form as onnxruntime loads it: DequantizeLinear + MatMul fused into
    MatMulNBits, exact against the IR with fp32 products (accuracy level 0)."""
    import onnx

    spec = parse_spec(spec_text("bert_like_encoder"))
    compiled = compile_spec(spec, seed=2, quantize="int4", opset=21)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "0")
    session = ort.InferenceSession(compiled.model.serialize(), options, providers=["CPUExecutionProvider"])
    assert "MatMulNBits" in {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}
    feeds = feeds_for(session, 2, 9, 3, spec.model.vocab_size, seed=2)
    want = evaluate(compiled.graph, feeds)["last_hidden_state"]
    np.testing.assert_allclose(session.run(["last_hidden_state"], feeds)[0], want, atol=1e-5, rtol=0)
