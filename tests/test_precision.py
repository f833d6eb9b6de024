"""`--dtype fp16 / bf16`: every component case compiled in low precision computes what its fp32 model
computes, within the precision's rounding; index arithmetic (positions, masks) stays fp32; masks
stay finite; ops without a low-precision form run in fp32 and are reported; bad combinations are
clear errors.

The truth is the fp32 model on onnxruntime (itself checked against the papers' NumPy references in
test_components.py), with the same unit-scale weights. fp16 runs on onnxruntime's CPU provider
(which computes most nodes in fp32 between Casts) and on onnx's reference evaluator (fp16 arithmetic
throughout); bf16 only on the reference evaluator (onnxruntime has no CPU bf16 kernels).
Tolerances, relative to max(1, |output|): fp16 5e-3 (11-bit mantissa, ~5e-4 per rounding, over two
layers of unit-scale activations), bf16 5e-2 (8 bits, ~4e-3 per rounding).
"""
from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from onnx_reference import evaluator
from test_components import BASE, CASES, feeds_for, random_weights, real_positions, spec_text
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import TfcError
from tfcompiler.inspection import every_node
from tfcompiler.ir import Graph
from tfcompiler.ir.ops.lsh import SELF_MASK
from tfcompiler.ir.ops.nn import MASKED
from tfcompiler.language.rules import low_precision_refusals
from tfcompiler.lower import to_onnx
from tfcompiler.lower import precision
from tfcompiler.lower.precision import NUMPY_TYPES, retype
from tfcompiler.lower.value_types import value_types
from tfcompiler.lower import convert_precision, precision_numerics
from tfcompiler.passes.base import ContractError, PassError
from tfcompiler.lower.convert_precision import ConvertPrecision

TOLERANCE = {"fp16": 5e-3, "bf16": 5e-2}
# RFA's normaliser φ(q)·Σφ(k) sums sin/cos features of both signs and comes near zero, so rounding
# the features is amplified without bound (the fp32 model itself is checked in test_components.py); the
# kind declares it (refuses_low_precision) and compile_spec refuses fp16/bf16 for it (tested below)
ILL_CONDITIONED = {"rfa_encoder", "rfa_gated_decoder"}
# recurrent nets with unit-scale random weights are chaotic (an LSTM turns a 1e-3 change of its
# input into 4e-2 over 13 steps, in any precision): these take the compiler's seeded initialisation
# (std 0.02), the contracting regime trained nets work in, and run unpadded (onnx's reference
# GRU and LSTM ignore sequence_lens; test_components.py checks the padded fp32 models)
RECURRENT = {"gru_decoder_in_blocks", "gru_seq2seq_state_handover_one_layer", "lstm_bidirectional_stack",
             "lstm_seq2seq_state_handover", "lstm_seq2seq_with_attention", "r_transformer_decoder",
             "r_transformer_lstm_encoder", "rnn_relu_decoder", "vectors_into_a_bidirectional_lstm",
             "lstm_bidirectional_states_in_and_out"}
# discrete choices (buckets, clusters, routes, sampled queries) may flip near a tie when the scores
# are rounded, and every later position that reads a changed one follows: here at least 3/4 of the
# positions must agree within the tolerance
DISCRETE = {"routing_causal_decoder", "routing_encoder", "reformer_lsh_causal_decoder", "reformer_lsh_encoder",
            "reformer_trax_lsh_decoder", "reformer_trax_lsh_encoder", "reversible_lsh_decoder", "clustered_encoder",
            "informer_prob_sparse", "informer_prob_sparse_decoder", "reformer_pytorch_lsh_encoder",
            "reformer_lsh_look_ahead_encoder", "reformer_lsh_look_ahead_decoder", "reformer_lsh_padded_to_lcm_encoder",
            "informer_point_forecast", "distilled_features_encoder", "standardised_univariate_series"}
DISCRETE |= {"routing_rotary_values", "routing_shared_qk", "routing_commitment_loss", "routing_padding_by_content",
             "routing_causal_padding_by_content"}
# onnx's reference evaluator does not know the RNN op's Relu activation
NO_REFERENCE = {"rnn_relu_decoder"}
# Nyström's pseudo-inverse multiplies the rounding of its landmark kernel by the kernel's condition
# number (tens with 3 landmarks and unit-scale weights; its iterations run in fp32)
CONDITIONED = {"nystrom_encoder": 3, "nystrom_global_pinv_scale": 3, "nystrom_gqa_no_conv": 3}


def compiled(spec, weights, dtype, opset=23, **options):
    return compile_spec(spec, weights=weights and str(weights), opset=opset, dtype=dtype, **options).model


def low_feeds(feeds, dtype):
    return {k: v.astype(np.float16) if v.dtype == np.float32 and dtype == "fp16" else v for k, v in feeds.items()}


def assert_close(got, want, feeds, names, tolerance, label, agreeing=1.0):
    """Every real position within `tolerance` (relative to max(1, |want|)), or the share `agreeing` of them."""
    for name, a, b in zip(names, got, want):
        if b.dtype.kind != "f":
            continue
        assert not np.isnan(a).any(), (label, name, "NaN")
        real = real_positions(feeds, name, b.shape)
        scale = max(1.0, float(np.abs(b[real]).max()))
        error = np.where(real, np.abs(a.astype(np.float32) - b), 0)
        if agreeing == 1.0:
            assert float(error.max()) <= tolerance * scale, (label, name, float(error.max()), scale)
        else:  # per position: the last axis is the feature axis
            rows = real.all(-1) if b.ndim > 2 else real
            within = (error.max(-1) if b.ndim > 2 else error) <= tolerance * scale
            assert within[rows].mean() >= agreeing, (label, name, float(within[rows].mean()))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


def case_weights(case, weights_dir):
    """The spec and its weights file (None for the seeded initialisation)."""
    spec = parse_spec(spec_text(case), f"{case}.yaml")
    if case in RECURRENT:
        return spec, None
    path = weights_dir / f"{case}.safetensors"
    if not path.exists():
        save_file(random_weights(spec), str(path))
    return spec, path


LOW_OPSET_CASES = ["llama_like_decoder_gqa", "bert_like_encoder", "conditional_embeddings", "linear_causal_decoder",
                   "lstm_seq2seq_with_attention", "memory_compressed_encoder", "t5_encoder_decoder",
                   "performer_causal_decoder"]


@pytest.mark.parametrize("case, opset", [(case, 23) for case in sorted(set(CASES) - ILL_CONDITIONED)]
                         + [(case, 17) for case in LOW_OPSET_CASES])
def test_low_precision_computes_what_fp32_does(case, opset, weights_dir):
    spec, weights = case_weights(case, weights_dir)
    fp32 = ort.InferenceSession(compiled(spec, weights, "fp32", opset).serialize())
    names = [o.name for o in fp32.get_outputs()]
    feeds = feeds_for(fp32, 3, 11, 0 if case in RECURRENT else 4, spec.model.vocab_size, seed=11)
    want = fp32.run(None, feeds)
    for dtype in ("fp16", "bf16"):
        model = compiled(spec, weights, dtype, opset)
        proto = model.to_proto()
        onnx.checker.check_model(proto, full_check=True)  # every op takes the types it is given
        float_type = np.float16 if dtype == "fp16" else np.float32  # numpy has no bf16 for I/O
        tolerance = TOLERANCE[dtype] * CONDITIONED.get(case, 1)
        runs = [] if case in NO_REFERENCE else [("reference", evaluator(proto).run(None, low_feeds(feeds, dtype)))]
        if dtype == "fp16":
            session = ort.InferenceSession(model.serialize())
            runs.append(("onnxruntime", session.run(None, low_feeds(feeds, dtype))))
        for runner, got in runs:
            assert all(g.dtype == float_type for g, w in zip(got, want) if w.dtype.kind == "f")
            assert_close(got, want, feeds, names, tolerance, (dtype, runner), 0.75 if case in DISCRETE else 1.0)


@pytest.mark.parametrize("positional", ["{kind: sinusoidal, layout: interleaved}", "rope", "alibi"])
def test_positions_past_2048_stay_exact(positional, tmp_path):
    """Positions past 2048 are not integers in fp16: angles and distances are computed in fp32 (or
    by the compiler) and only their encodings are rounded; position 3001's angles computed in fp16
    would be off by up to 2 rad."""
    text = BASE.format(name="long", topology="decoder", model=", heads: 4")
    text = text.replace("max_length: 40", "max_length: 4096")
    spec = parse_spec(text + f"positional: {positional}\ndecoder: {{layers: 1}}\n", "long.yaml")
    weights = tmp_path / "w.safetensors"
    save_file(random_weights(spec), str(weights))
    fp32 = ort.InferenceSession(compiled(spec, weights, "fp32").serialize())
    fp16 = ort.InferenceSession(compiled(spec, weights, "fp16").serialize())
    feeds = feeds_for(fp32, 1, 3002, 0, spec.model.vocab_size, seed=3)
    want, got = fp32.run(None, feeds)[0], fp16.run(None, low_feeds(feeds, "fp16"))[0]
    late = np.s_[:, 2900:]
    assert float(np.abs(got[late].astype(np.float32) - want[late]).max()) <= TOLERANCE["fp16"] * max(
        1.0, float(np.abs(want[late]).max()))


def test_index_arithmetic_is_fp32_and_meets_activations_through_one_cast(weights_dir):
    spec, weights = case_weights("alibi_causal_decoder", weights_dir)
    proto = compiled(spec, weights, "fp16").to_proto()
    graph = onnx.shape_inference.infer_shapes(proto).graph
    types = {v.name: v.type.tensor_type.elem_type for v in graph.value_info}
    distances = [node for node in graph.node if "/alibi/" in node.name and node.op_type == "Mul"]
    assert distances and all(types[node.output[0]] == onnx.TensorProto.FLOAT for node in distances)
    scores = [node for node in graph.node if node.op_type == "Attention"]
    assert scores and all(types[node.output[0]] == onnx.TensorProto.FLOAT16 for node in scores)
    casts = [node.input[0] for node in every_node(graph) if node.op_type == "Cast" and node.name.endswith("/to_fp16")]
    assert len(casts) == len(set(casts))  # one Cast per tensor


def test_masks_stay_finite_and_padded_rows_are_not_nan(weights_dir):
    """fp32's most negative number is -inf in fp16: a fully masked row would be NaN after softmax."""
    spec, weights = case_weights("bert_like_encoder", weights_dir)
    model = compiled(spec, weights, "fp16")
    constants = [np.asarray(a, np.float32) for name, a in model.initializers if np.asarray(a).dtype.kind == "f"]
    assert all(np.isfinite(c[~np.isinf(c)]).all() and not np.isneginf(c).any() for c in constants)
    session = ort.InferenceSession(model.serialize())
    feeds = feeds_for(session, 2, 6, 6, spec.model.vocab_size, seed=1)  # the first row all padding
    assert all(not np.isnan(out).any() for out in session.run(None, feeds))



# fp32's masks (the IR's reference values) -> their shares of a low type's most negative number
MASK_SHARES = {float(MASKED): 1 / 2, float(MASKED) / 2: 1 / 4, SELF_MASK: 1 / 8}


@pytest.mark.parametrize("case, masks, from_ir", [("bert_like_encoder", {float(MASKED)}, False),
                                                   ("reformer_lsh_encoder", set(MASK_SHARES), False),
                                                   ("multi_scale_spans", {float(MASKED)}, True),
                                                   ("adaptive_span_decoder", {float(MASKED)}, True)])
def test_masks_are_typed_constants_of_the_models_precision(case, masks, from_ir, weights_dir):
    """The lowering emits each mask (padding, LSH's padding threshold and self-mask, the IR's span
    masks and the floor of two of them) in the model's precision and records it by name: fp32's
    values, or their shares of the low type's most negative number (-inf would make a fully masked
    row NaN), in the same order."""
    spec, weights = case_weights(case, weights_dir)
    for dtype in ("fp32", "fp16", "bf16"):
        model = compiled(spec, weights, dtype)
        held = {name: np.asarray(a).astype(np.float32) for name, a in model.initializers if name in model.masks}
        assert held.keys() == model.masks, dtype  # every recorded mask is an initializer of the model
        lowest = float(ml_dtypes.finfo(NUMPY_TYPES[dtype]).min) if dtype != "fp32" else None
        expected = {value if lowest is None else lowest * MASK_SHARES[value] for value in masks}
        assert {float(v) for v in held.values()} == expected, dtype
        nodes = list(every_node(model.proto.graph))
        assert {name for node in nodes for name in node.input if name in model.masks} == model.masks  # all read
        floors = [node.input[1] for node in nodes if node.name.endswith("/MaskFloor")]
        assert all(bound in model.masks for bound in floors), dtype
        if from_ir:  # the builder's mask_value, and the floor of a span and the padding mask
            assert floors and any("span/Constant" in name for name in model.masks), dtype


@pytest.mark.parametrize("value", sorted(MASK_SHARES))
@pytest.mark.parametrize("source", ["weight", "constant"])
def test_a_number_equal_to_a_mask_stays_that_number(source, value):
    """Only the recorded masks are masks: a weight or constant that equals fp32's mask, threshold or
    self-mask is a number, kept (rounded) by bf16 where its range holds it and refused by name where
    not (fp16 holds none of them), never turned into a low-precision mask."""
    g = Graph()
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", 4), role="x"))
    if source == "weight":
        number = g.add1("param", attrs=dict(name="w", dtype="float32", shape=(4,), init="zeros"))
        g.weights["w"] = np.full(4, value, np.float32)
    else:
        number = g.add1("constant", attrs={"value": np.full(4, value, np.float32)}, label="Number")
    g.outputs["y"] = g.add1("mul", [x, number])
    lowered = to_onnx(g, 17)
    assert not lowered.masks
    for dtype, low_type in NUMPY_TYPES.items():
        if abs(value) > float(ml_dtypes.finfo(low_type).max):
            with pytest.raises(TfcError, match=f"{'w' if source == 'weight' else '/Number'}: values up to "
                                               f".* do not fit {low_type.name}"):
                retype(lowered, dtype, set(g.weights))
            continue
        low = retype(lowered, dtype, set(g.weights))
        (held,) = [np.asarray(a) for _, a in low.initializers if np.asarray(a).dtype == low_type]
        np.testing.assert_array_equal(held.astype(np.float32), np.float32(value).astype(low_type).astype(np.float32))
        assert not low.masks


def test_a_mask_lowered_for_another_precision_is_an_internal_error(weights_dir):
    """The retyper converts the recorded masks as they are: one made for fp32 (-3.4e38, -inf in fp16)
    means the lowering was not told the precision, and it says so instead of writing an infinity."""
    spec, weights = case_weights("bert_like_encoder", weights_dir)
    graph = compile_spec(spec, weights=str(weights), opset=17).graph
    with pytest.raises(ValueError, match=r"mask /constants/float32_scalar holds -3\.40282e\+38, not a fp16 mask: "
                                         "the model was lowered for another precision"):
        retype(to_onnx(graph, 17), "fp16", set(graph.weights))

def test_ops_without_a_low_precision_form_run_in_fp32_and_are_reported(weights_dir):
    spec, weights = case_weights("conditional_embeddings", weights_dir)
    missed = compiled(spec, weights, "bf16", opset=17).missed
    assert missed[("bf16 Conv", "the standard's Conv (opset 17) takes no tensor(bfloat16): computed in fp32")] >= 1
    assert not any(fused.startswith("bf16") for fused, _ in compiled(spec, weights, "bf16", opset=23).missed)


@pytest.mark.parametrize("target, quantize, opset", [("portable", "int4", 21), ("ort-cuda", "int4", 23),
                                                     ("ort-cuda", "none", 23)])
def test_ort_cuda_and_int4_models_in_fp16_compute_what_fp32_does(target, quantize, opset, weights_dir):
    """onnxruntime's CPU provider runs the ort-cuda graph too (casting its contrib kernels' inputs to
    fp32), so its numerics are checked here; the CUDA kernels themselves in test_cuda_provider. The
    portable int4 models run unoptimised: onnxruntime's optimiser fuses DequantizeLinear + MatMul into
    a MatMulNBits that quantizes the activations to int8 (2.6e-2 off at unit scale)."""
    case = "bert_like_encoder"
    spec = parse_spec(spec_text(case).replace("max_length: 40", "max_length: 1100"), f"{case}.yaml")  # flash
    weights = weights_dir / "bert_long.safetensors"
    if not weights.exists():  # the three cases share them
        save_file(random_weights(spec), str(weights))
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fp32 = ort.InferenceSession(compiled(spec, weights, "fp32", opset, quantize=quantize).serialize(), exact)
    model = compiled(spec, weights, "fp16", opset, quantize=quantize, target=target)
    if target == "ort-cuda":
        kernels = {node.op_type for node in every_node(model.proto.graph) if node.domain}
        expected = {"MultiHeadAttention", "SkipLayerNormalization"} | ({"MatMulNBits"} if quantize == "int4" else set())
        assert expected <= kernels
    session = ort.InferenceSession(model.serialize(), exact if target == "portable" else None)
    for length in (9, 1030):
        feeds = feeds_for(fp32, 2, length, 3, spec.model.vocab_size, seed=length)
        assert_close(session.run(None, low_feeds(feeds, "fp16")), fp32.run(None, feeds), feeds,
                     [o.name for o in fp32.get_outputs()], TOLERANCE["fp16"], (target, length))


def test_int4_in_bf16_computes_what_fp32_int4_does(weights_dir):
    """The 4-bit blocks' scales in bf16 (standard DequantizeLinear at opset 21), on onnx's reference
    evaluator, against the fp32 int4 model run unoptimised (the exact dequantized product)."""
    spec, weights = case_weights("bert_like_encoder", weights_dir)
    exact = ort.SessionOptions()
    exact.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    fp32 = ort.InferenceSession(compiled(spec, weights, "fp32", 21, quantize="int4").serialize(), exact)
    proto = compiled(spec, weights, "bf16", 21, quantize="int4").to_proto()
    onnx.checker.check_model(proto, full_check=True)
    feeds = feeds_for(fp32, 3, 11, 4, spec.model.vocab_size, seed=11)
    assert_close(evaluator(proto).run(None, feeds), fp32.run(None, feeds), feeds,
                 [o.name for o in fp32.get_outputs()], TOLERANCE["bf16"], "int4 bf16")


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(),
                    reason="no CUDA provider here (onnxruntime CPU build or no GPU): the ort-cuda kernels run only "
                           "where an NVIDIA GPU and onnxruntime-gpu are installed")
@pytest.mark.parametrize("dtype", ["fp32", "fp16", "bf16"])
@pytest.mark.parametrize("case", ["bert_like_encoder", "llama_like_decoder_gqa", "t5_encoder_decoder",
                                  "sliding_window_decoder", "performer_encoder"])
def test_cuda_provider(case, dtype, weights_dir):
    spec, weights = case_weights(case, weights_dir)
    fp32 = ort.InferenceSession(compiled(spec, weights, "fp32").serialize())
    model = compiled(spec, weights, dtype, target="ort-cuda")
    session = ort.InferenceSession(model.serialize(), providers=["CUDAExecutionProvider"])
    feeds = feeds_for(fp32, 3, 11, 4, spec.model.vocab_size, seed=11)
    assert_close(session.run(None, low_feeds(feeds, dtype)), fp32.run(None, feeds), feeds,
                 [o.name for o in fp32.get_outputs()], max(TOLERANCE[dtype], 1e-4) if dtype != "fp32" else 1e-3,
                 (case, dtype))


def test_same_spec_gives_the_same_bytes_in_low_precision(weights_dir):
    spec, weights = case_weights("rope_half_split_gqa", weights_dir)
    assert compiled(spec, weights, "bf16").serialize() == compiled(spec, weights, "bf16").serialize()


def test_weights_beyond_fp16_are_an_error(tmp_path):
    spec = parse_spec(spec_text("bert_like_encoder"), "bert.yaml")
    weights = random_weights(spec)
    name = next(iter(sorted(weights)))
    weights[name] = weights[name] * 0 + 1e5
    save_file(weights, str(tmp_path / "w.safetensors"))
    with pytest.raises(TfcError, match=f"{name}: values up to 100000 do not fit float16"):
        compiled(spec, tmp_path / "w.safetensors", "fp16")
    compiled(spec, tmp_path / "w.safetensors", "bf16").serialize()  # bf16 has fp32's range


def test_ill_conditioned_kinds_refuse_low_precision(tmp_path, capsys):
    """A kind that declares itself ill-conditioned in low precision (RFA) refuses --dtype fp16 and bf16,
    naming the layer, the kind and the reason, and writes nothing; the cases it refuses are exactly the
    ones the comparison above leaves out."""
    from tfcompiler.cli import main

    assert {case for case in CASES if low_precision_refusals(parse_spec(spec_text(case)))} == ILL_CONDITIONED
    spec = parse_spec(spec_text("rfa_encoder"), "rfa.yaml")
    for dtype in ("fp16", "bf16"):
        with pytest.raises(TfcError, match=rf"^rfa.yaml: encoder.layers\[0\].block.attention \(and 1 more like it\): "
                                           rf"--dtype {dtype} is refused: 'rfa' is ill-conditioned in low precision: "
                                           "its normaliser .* compile it with --dtype fp32$"):
            compile_spec(spec, dtype=dtype)
    path, out = tmp_path / "rfa.yaml", tmp_path / "rfa.onnx"
    path.write_text(spec_text("rfa_gated_decoder"))
    assert main(["compile", str(path), "-o", str(out), "--dtype", "fp16", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"error: {path}: decoder.layers[0].block.attention (and 1 more like it): --dtype fp16 is refused: " \
           "'rfa' is ill-conditioned" in err
    assert "Traceback" not in err and sorted(p.name for p in tmp_path.iterdir()) == ["rfa.yaml"]
    assert main(["compile", str(path), "-o", str(out), "-q"]) == 0 and out.exists()  # fp32 compiles


@pytest.mark.parametrize("options, message", [
    ({"target": "ort-cpu", "dtype": "fp16"}, "--dtype fp16 is not for --target ort-cpu"),
    ({"quantize": "int8", "dtype": "bf16"}, "--quantize int8 quantizes fp32 activations"),
    ({"dtype": "fp8"}, "--dtype fp8: expected one of fp32, fp16, bf16"),
])
def test_bad_precision_options_are_clear_errors(options, message):
    with pytest.raises(TfcError, match=message):
        compile_spec(parse_spec(spec_text("bert_like_encoder")), **options)


def test_cli_compiles_explains_and_runs_low_precision_models(tmp_path, capsys):
    from tfcompiler.cli import main

    spec = tmp_path / "bert.yaml"
    spec.write_text(spec_text("bert_like_encoder"))
    fp16, bf16 = tmp_path / "fp16.onnx", tmp_path / "bf16.onnx"
    assert main(["compile", str(spec), "-o", str(fp16), "--dtype", "fp16", "--explain", "-q"]) == 0
    assert "fp16: activations in fp16, index arithmetic in fp32" in capsys.readouterr().out
    assert main(["run", str(fp16)]) == 0
    assert "output last_hidden_state: float16" in capsys.readouterr().out
    assert main(["inspect", str(fp16), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["metadata"]["tfcompiler.dtype"] == "fp16"
    assert 2 * report["parameters"] <= report["stored_bytes"] < 2.1 * report["parameters"]  # + int64 shapes
    assert main(["compile", str(spec), "-o", str(bf16), "--dtype", "bf16", "--target", "ort-cuda", "-q"]) == 0
    capsys.readouterr()
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert main(["run", str(bf16)]) == 1
        assert "it computes in bf16, which onnxruntime runs on CUDA only" in capsys.readouterr().err
    assert main(["compile", str(spec), "-o", str(tmp_path / "x.onnx"), "--dtype", "fp16", "--target", "ort-cpu"]) == 1
    assert "--dtype fp16 is not for --target ort-cpu" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def small_lowered():
    """A unit-scale two-layer encoder lowered for fp16 (the fp32 graph the precision pass takes)."""
    spec = parse_spec(spec_text("bert_like_encoder"), "bert.yaml")
    compiled_spec = compile_spec(spec, opset=17)
    graph = compiled_spec.graph
    return to_onnx(graph, 17, precision="fp16"), set(graph.weights)


def test_the_precision_pass_requires_an_fp32_model():
    lowered, weights = small_lowered()
    low = ConvertPrecision("fp16", weights).run(lowered).model
    for precision_name in ("fp16", "bf16"):
        with pytest.raises(ContractError, match="convert_precision requires an fp32 model: initializer .* is float16"):
            ConvertPrecision(precision_name, weights).run(low)


def test_the_precision_pass_ensures_types_its_ops_take(monkeypatch):
    """A retyper that forgets a Cast where an fp32 tensor meets an activation leaves a node whose
    inputs disagree: onnx's strict type inference, in the pass's ensures, names it."""
    lowered, weights = small_lowered()
    result = ConvertPrecision("fp16", weights).run(lowered)  # the real one keeps its promise
    assert result.changed and "Cast(s) to fp16" in result.notes[0]
    monkeypatch.setattr(precision._Retyper, "as_class", lambda self, name, kind, scope: name)
    with pytest.raises(ContractError, match="convert_precision left a node whose inputs its op does not take"):
        ConvertPrecision("fp16", weights).run(lowered)


def test_the_precision_pass_ensures_every_weight_is_converted(monkeypatch):
    """A retyper that does not know the weights computes everything in fp32: a consistent model, but
    not the one promised."""
    lowered, weights = small_lowered()
    real = convert_precision.retyper
    monkeypatch.setattr(convert_precision, "retyper", lambda model, p, weights, *rest: real(model, p, set(), *rest))
    with pytest.raises(ContractError, match="convert_precision left weight .* in fp32"):
        ConvertPrecision("fp16", weights).run(lowered)


def test_the_block_list_is_data_with_reasons():
    """An op on the block list (here as if the provider had no fp16 Softmax) computes in fp32 between
    Casts, and the pass's notes say how many and why."""
    lowered, weights = small_lowered()
    p = ConvertPrecision("fp16", weights, frozenset({"Softmax"}))
    assert p.blocked == {"Softmax": "the target's provider has no kernel for it: computed in fp32",
                         "CumSum": "a running sum along the sequence, which outgrows the low precision's step: "
                                   "kept fp32"}
    result = p.run(lowered)
    assert any(note.startswith("kept fp32: 2 Softmax (the target's provider has no kernel") for note in result.notes)
    graph = result.model.proto.graph
    types = value_types(result.model.proto, result.model.initializers)
    softmax = [node for node in graph.node if node.op_type == "Softmax"]
    assert len(softmax) == 2 and all(types.get(node.output[0]) == onnx.TensorProto.FLOAT for node in softmax)


def test_explain_shows_the_precision_pass_and_verify_checks_it(tmp_path, capsys, monkeypatch):
    from tfcompiler.cli import main

    spec = tmp_path / "bert.yaml"
    spec.write_text(spec_text("bert_like_encoder"))
    out = str(tmp_path / "m.onnx")
    assert main(["compile", str(spec), "-o", out, "--dtype", "fp16", "--explain", "--verify", "-q"]) == 0
    text = capsys.readouterr().out
    assert "convert_precision: changed" in text
    assert "node(s) compute in fp16" in text and "inputs and outputs in fp16" in text
    checked = [line for line in text.splitlines() if line.strip().startswith("numerics checked on onnxruntime CPU")]
    assert len(checked) == 1 and float(checked[0].split("within ")[1].split()[0]) < 5e-3
    verdict = [line for line in text.splitlines() if line.startswith("verified: ")]
    assert len(verdict) == 1 and verdict[0].endswith(f"convert_precision: {checked[0].strip()}")
    assert main(["compile", str(spec), "-o", out, "--dtype", "bf16", "--target", "ort-cuda", "--explain",
                 "--verify", "-q", "--dump-after", "convert_precision"]) == 0
    text = capsys.readouterr().out
    assert "inputs and outputs in fp32" in text and "numerics checked structurally only" in text
    dump = text.split("--- IR after convert_precision ---")[1]
    assert f"Cast <to: int = {onnx.TensorProto.BFLOAT16}>" in dump
    assert main(["compile", str(spec), "-o", out, "--dump-after", "convert_precision", "-q"]) == 1
    assert "--dump-after convert_precision: that pass runs with --dtype fp16 or bf16 only" in capsys.readouterr().err
    monkeypatch.setitem(precision_numerics.BUDGET, "fp16", 1e-9)  # the check can fail
    with pytest.raises(PassError, match="pass convert_precision failed at output .* relative RMS from the fp32 model"):
        compile_spec(parse_spec(spec_text("bert_like_encoder")), dtype="fp16", check_numerics=True)
