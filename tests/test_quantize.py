"""`--quantize int8 | int4`: the quantized ops' NumPy semantics equal their ONNX lowerings (int8:
standard DynamicQuantizeLinear + MatMulInteger, and com.microsoft DynamicQuantizeMatMul on ort-cpu;
int4: MatMulNBits); weights round-trip within half a step; whole compiled models stay within the
accuracy budget of the NumPy paper reference; the pipeline checks the pass against that budget;
output is deterministic; int4 refuses the portable target."""
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
from tfcompiler.ir.ops.quantized import unpack_int4
from tfcompiler.passes.quantize_weights import BLOCK, LEVELS, QuantizeWeights, quantize, quantize_int4
from tfcompiler.ir.interpret import evaluate


def test_weights_round_trip_within_half_a_step():
    weight = np.random.default_rng(0).standard_normal((64, 24)).astype(np.float32)
    weight[:, 3] = 0.0  # an all-zero column keeps a usable scale
    values, scales = quantize(weight)
    assert values.dtype == np.int8 and np.abs(values).max() == LEVELS and np.all(scales > 0)
    assert np.all(np.abs(weight - values * scales) <= scales / 2 + 1e-7)


def test_int4_weights_round_trip_within_half_a_step_of_their_block():
    weight = np.random.default_rng(4).standard_normal((70, 6)).astype(np.float32)  # K not a multiple of 32
    packed, scales = quantize_int4(weight)
    assert packed.shape == (6, 3, BLOCK // 2) and scales.shape == (6, 3)
    restored = unpack_int4(packed, scales, 70)
    per_row = np.repeat(scales.T, BLOCK, axis=0)[:70]  # each weight's block scale
    assert np.all(np.abs(weight - restored) <= per_row / 2 + 1e-6)


def test_int4_needs_the_ort_cpu_target():
    with pytest.raises(TfcError, match="needs --target ort-cpu"):
        compile_spec(parse_spec(spec_text("bert_like_encoder")), quantize="int4")


@pytest.mark.parametrize("target, bits", [("portable", 8), ("ort-cpu", 8), ("ort-cpu", 4)])
def test_quantized_matmul_lowerings_match_its_numpy_semantics(target, bits):
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 5, 48), role="x"))
    w = g.add1("param", attrs=dict(name="w", dtype="float32", shape=(48, 8), init="matrix"))
    g.outputs["y"] = g.add1("matmul", [x, w])
    g.weights = {"w": np.random.default_rng(1).standard_normal((48, 8)).astype(np.float32)}
    assert QuantizeWeights(bits).run(g).changed
    for node in [n for n in g.nodes() if g.op(n).type == "param" and g.op(n).attrs["name"] == "w"]:
        g.remove(node)
    rng = np.random.default_rng(2)
    for x_value in (rng.standard_normal((2, 5, 48)) * 3, np.abs(rng.standard_normal((1, 5, 48)))):
        x_value = x_value.astype(np.float32)
        want = evaluate(g, {"x": x_value}, {k: np.asarray(v) for k, v in g.weights.items()})["y"]
        model = to_onnx(g, 17, target=target)
        got = ort.InferenceSession(model.serialize(), providers=["CPUExecutionProvider"]).run(None, {"x": x_value})[0]
        if bits == 4:  # weight-only: the same dequantized weights, fp32 products
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
            continue
        step = (max(x_value.max(), 0) - min(x_value.min(), 0)) / 255
        # one activation step either way where x / step sits on a rounding boundary in float32
        assert np.abs(got - want).max() <= step * np.abs(np.asarray(g.weights["w.int8"]) * np.asarray(
            g.weights["w.scale"])).sum(0).max() + 1e-5


@pytest.mark.parametrize("case, bits", [("bert_like_encoder", 8), ("llama_like_decoder_gqa", 8),
                                        ("paper_encoder_decoder", 8), ("multi_query_decoder", 8),
                                        ("bert_like_encoder", 4), ("multi_query_decoder", 4)])
def test_quantized_models_stay_within_the_budget_of_the_fp32_reference(case, bits, tmp_path):
    spec = parse_spec(spec_text(case), f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"), quantize=f"int{bits}", check_numerics=True,
                            target="portable" if bits == 8 else "ort-cpu")
    kernel = "MatMulInteger" if bits == 8 else "MatMulNBits"
    assert any(n.op_type == kernel for n in compiled.model.proto.graph.node)
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


@pytest.mark.parametrize("target, quantize", [("portable", "int8"), ("ort-cpu", "int8"), ("ort-cpu", "int4")])
def test_inspect_counts_the_quantized_matmuls(target, quantize, tmp_path):
    from tfcompiler.inspection import inspect_model

    spec = parse_spec(spec_text("bert_like_encoder"))
    flops = {}
    for q in ("none", quantize):
        compile_spec(spec, target=target, quantize=q).model.save(tmp_path / f"{q}.onnx")
        flops[q] = inspect_model(str(tmp_path / f"{q}.onnx"))["weight_flops_per_token"]
    assert flops[quantize] == flops["none"] > 0
