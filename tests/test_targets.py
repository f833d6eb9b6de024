"""Targets: every kernel the capability table lets `ort-cpu` use computes what the portable lowering
computes, on onnxruntime's CPU provider; the target is recorded in the model; `portable` uses
standard ops only."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from test_components import feeds_for, spec_text
from tfcompiler import compile_spec, parse_spec
from tfcompiler.inspection import every_node
from tfcompiler.lower.targets import CAPABILITIES, CPU, kernels_for
from tfcompiler.lower.to_onnx import to_onnx

# per kernel, specs whose lowering uses it (`+int8`: compiled with --quantize int8)
USES = {"LinearAttention": ["linear_causal_decoder", "performer_causal_decoder", "rfa_gated_decoder"],
        "DynamicQuantizeMatMul": ["bert_like_encoder+int8", "llama_like_decoder_gqa+int8"],
        "Gelu": ["bert_like_encoder"], "FastGelu": ["multi_query_decoder"],
        # checked though the target skips them (measured slower): compiled with them forced on
        "SkipLayerNormalization": ["bert_like_encoder!", "paper_encoder_decoder!"],
        "SkipSimplifiedLayerNormalization": ["llama_like_decoder_gqa!"],
        # MatMulNBits: tests/test_quantize.py checks both int4 forms against the IR
        "MatMulNBits": [],
        # a cached decoder's: tests/test_cache.py checks it step by step, in chunks and left-padded
        "GroupQueryAttention": [],
        "MultiHeadAttention": ["bert_like_encoder", "rope_interleaved_partial_linear"],
        "QueryBlocks": ["multi_query_decoder"]}


def test_every_cpu_kernel_has_a_check():
    assert sorted(USES) == sorted(name for name, kernel in CAPABILITIES.items() if CPU in kernel.providers)
    assert kernels_for("portable") == frozenset()
    skipped = {name for name, kernel in CAPABILITIES.items() if CPU in kernel.slower_on}
    assert skipped and not skipped & kernels_for("ort-cpu") and skipped <= kernels_for("ort-cpu", True)
    assert skipped <= kernels_for("ort-cuda", precision="fp16")  # measured slower on CPU only


def test_a_cached_decoder_uses_the_kernels_that_pay_at_one_token():
    """SkipSimplifiedLayerNormalization measured slower over a prompt on CPU but faster at one token: a
    decoder compiled with a KV cache uses it on ort-cpu, its forward-only twin does not."""
    spec = parse_spec(spec_text("llama_like_decoder_gqa"), "llama.yaml")
    for cache in (True, False):
        ops = {node.op_type for node in compile_spec(spec, target="ort-cpu", cache=cache).model.proto.graph.node}
        assert ("SkipSimplifiedLayerNormalization" in ops) == cache
    assert "SkipSimplifiedLayerNormalization" in kernels_for("ort-cpu", decoding=True) - kernels_for("ort-cpu")


def test_cuda_target_uses_only_kernels_its_provider_has_at_the_precision():
    """onnxruntime's CUDA provider has no fp32-only CPU kernels (LinearAttention, DynamicQuantizeMatMul),
    and the query-block Loop is a CPU memory strategy."""
    from tfcompiler.lower.targets import CUDA, fp32_only

    for precision in ("fp32", "fp16", "bf16"):
        used = kernels_for("ort-cuda", precision=precision)
        assert used == {name for name, kernel in CAPABILITIES.items() if precision in kernel.dtypes.get(CUDA, ())}
        assert not used & {"LinearAttention", "DynamicQuantizeMatMul", "QueryBlocks"}
    assert "TopK" in fp32_only("ort-cuda", "bf16", 23) and "TopK" not in fp32_only("ort-cuda", "fp16", 23)
    assert "Conv" in fp32_only("ort-cuda", "bf16", 21) and "Conv" not in fp32_only("ort-cuda", "bf16", 22)
    assert fp32_only("portable", "bf16", 17) == frozenset()  # the standard's own gaps: onnx's schemas


@pytest.mark.parametrize("kernel, case", [(kernel, case) for kernel, cases in USES.items() for case in cases])
def test_ort_cpu_kernels_compute_what_the_portable_lowering_does(kernel, case):
    forced = case.endswith("!")
    case, _, quantize = case.rstrip("!").partition("+")
    spec = parse_spec(spec_text(case).replace("max_length: 40", "max_length: 1100"), f"{case}.yaml")  # flash: >= 1024
    runs = {}
    for target in ("portable", "ort-cpu"):
        # opset 17: the portable lowering spells out what each kernel fuses (from opset 20 Gelu is standard)
        compiled = compile_spec(spec, seed=5, target=target, quantize=quantize or "none", cache=False, opset=17)
        model = compiled.model
        if forced and target == "ort-cpu":
            model = to_onnx(compiled.graph, 17, {"tfcompiler.target": target}, target,
                            kernels=kernels_for(target, measured_slower_too=True))
        domains = {node.domain for node in every_node(model.proto.graph)}
        assert (domains == {""}) == (target == "portable"), domains
        op_type = CAPABILITIES[kernel].op_type
        assert (op_type in {node.op_type for node in every_node(model.proto.graph)}) == (target == "ort-cpu")
        assert {p.key: p.value for p in model.proto.metadata_props}["tfcompiler.target"] == target
        session = ort.InferenceSession(model.serialize(), providers=[CPU])
        runs[target] = [session.run(None, feeds_for(session, batch, length, pad, spec.model.vocab_size, seed=length))
                        for batch, length, pad in [(1, 5, 0), (2, 150, 7)]]
    for (portable, kernel), (batch, length, pad) in zip(zip(runs["portable"], runs["ort-cpu"]),
                                                        [(1, 5, 0), (2, 150, 7)]):
        for a, b in zip(portable, kernel):
            real = slice(None) if not pad else np.s_[1:]  # the padded row's padded tail is undefined
            scale = max(1.0, float(np.abs(a[real]).max()))
            assert float(np.abs(a[real] - b[real]).max()) <= 1e-4 * scale, (case, length)


@pytest.mark.parametrize("target, quantize, expected", [
    ("portable", "none", "standard ONNX ops only"),
    ("ort-cpu", "int8", "DynamicQuantizeMatMul"),
    ("ort-cpu", "none", "Gelu"),
])
def test_explain_says_which_kernels_the_lowering_used(target, quantize, expected, tmp_path, capsys):
    from tfcompiler.cli import main

    spec = tmp_path / "bert.yaml"
    spec.write_text(spec_text("bert_like_encoder"))
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "--target", target, "--quantize", quantize,
                 "--explain", "-q"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("lowering for"))
    assert expected in line, line


def test_a_target_whose_kernels_do_not_apply_says_so():
    from tfcompiler.lower.targets import lowering_summary

    assert "none of its kernels applies" in lowering_summary(onnx.GraphProto(), "ort-cpu")


@pytest.mark.parametrize("opset, missed", [
    (17, {"Attention": "opset 17 < 23", "RMSNormalization": "opset 17 < 23", "RotaryEmbedding": "opset 17 < 23"}),
    (20, {"Attention": "opset 20 < 23", "RMSNormalization": "opset 20 < 23", "RotaryEmbedding": "opset 20 < 23"}),
    (23, {}),
])
def test_a_fused_form_the_lowering_cannot_use_is_reported(opset, missed, tmp_path, capsys):
    """Every op lowered without the fused form its target has (an opset too old, a blocked form the
    op cannot express) is counted with the reason, on stderr without --explain and in --explain."""
    from tfcompiler.cli import main

    spec = parse_spec(spec_text("rope_half_split_gqa"))
    model = compile_spec(spec, opset=opset).model
    layers = spec.decoder.layers
    counts = {"Attention": layers, "RMSNormalization": 2 * layers + 1, "RotaryEmbedding": 2 * layers}
    assert {fused: count for (fused, _), count in model.missed.items()} == {fused: counts[fused] for fused in missed}
    assert all(reason.startswith(missed[fused]) for fused, reason in model.missed)

    path = tmp_path / "llama.yaml"
    path.write_text(spec_text("rope_half_split_gqa"))
    assert main(["compile", str(path), "-o", str(tmp_path / "m.onnx"), "--opset", str(opset)]) == 0
    err = capsys.readouterr().err
    assert all(f"no {fused} for {counts[fused]} op(s): {missed[fused]}" in err for fused in missed)
    assert ("lowered without a fused form" in err) == bool(missed)


def test_blocked_attention_says_which_blocks_stay_explicit():
    """(Forward-only decoders: with a KV cache the patterns stay masks, test_specs.implied_changes.)"""
    missed = compile_spec(parse_spec(spec_text("sparse_transformer_strided")), opset=23, cache=False).model.missed
    assert missed and all(fused == "Attention" and "strided columns" in why for fused, why in missed), missed
    for fused in ("sliding_window_decoder", "sparse_transformer_fixed"):
        assert compile_spec(parse_spec(spec_text(fused)), opset=23, cache=False).model.missed == {}


LONG_INPUT_OPS = ("MultiHeadAttention", "Loop")  # flash attention, query blocks


def ran_on_long_inputs(tmp_path, case: str, runs) -> None:
    """`case` compiled for both targets with inputs up to past LONG_FROM; for each (length, pad, op)
    of `runs`, the profile shows that ort-cpu ran that one of LONG_INPUT_OPS (inside its `If`s) or,
    for None, neither, and both targets compute the same."""
    import json

    from tfcompiler.lower.long_inputs import LONG_FROM

    spec = parse_spec(spec_text(case).replace("max_length: 40", f"max_length: {LONG_FROM + 8}"))
    models = {target: compile_spec(spec, seed=5, target=target, opset=23, cache=False).model
              for target in ("portable", "ort-cpu")}
    for length, pad, op in runs:
        outputs = {}
        for target, model in models.items():
            options = ort.SessionOptions()
            options.enable_profiling, options.profile_file_prefix = True, str(tmp_path / target)
            session = ort.InferenceSession(model.serialize(), options, providers=[CPU])
            feeds = feeds_for(session, 2, LONG_FROM + length, pad, spec.model.vocab_size, seed=1)
            outputs[target] = session.run(None, feeds)[0]
            ran = {event["args"].get("op_name") for event in json.load(open(session.end_profiling()))
                   if event.get("cat") == "Node"}
            assert ran & set(LONG_INPUT_OPS) == ({op} if op and target == "ort-cpu" else set()), (length, pad, target)
        real = LONG_FROM + length - pad  # the padded row's real positions, and every other row
        for rows in (np.s_[:1, :real], np.s_[1:]):
            np.testing.assert_allclose(outputs["ort-cpu"][rows], outputs["portable"][rows], atol=1e-4, rtol=0)


def test_long_bidirectional_attention_runs_flash_or_query_blocks(tmp_path):
    """ort-cpu's MultiHeadAttention (flash attention on CPU) runs from LONG_FROM keys when the batch
    holds no padding, query blocks when it does (lengths relative to LONG_FROM)."""
    ran_on_long_inputs(tmp_path, "bert_like_encoder", [(4, 0, "MultiHeadAttention"), (4, 300, "Loop"), (-4, 0, None)])


@pytest.mark.parametrize("case", ["multi_query_decoder", "llama_like_decoder_gqa"])
def test_long_causal_attention_runs_by_query_blocks(tmp_path, case):
    """ort-cpu's causal self-attention runs one block of queries per Loop iteration from LONG_FROM
    keys, padded or not (a length that is not a whole number of blocks)."""
    ran_on_long_inputs(tmp_path, case, [(4, 0, "Loop"), (4, 300, "Loop"), (-4, 0, None)])


def test_a_contrib_op_only_inside_an_if_is_imported():
    """With a ReLU FFN the flash kernel inside the `If` is the model's only contrib op."""
    text = spec_text("bert_like_encoder").replace("max_length: 40", "max_length: 1100")
    model = compile_spec(parse_spec(text.replace("activation: gelu", "activation: relu")), target="ort-cpu").model
    top = {node.domain for node in model.proto.graph.node}
    assert "com.microsoft" not in top and "com.microsoft" in {o.domain for o in model.proto.opset_import}


@pytest.mark.parametrize("case, op_type", [("bert_like_encoder", "MultiHeadAttention"),
                                           ("multi_query_decoder", "Loop")])
def test_models_shorter_than_the_gate_keep_the_standard_lowering(case, op_type):
    """A model whose inputs never reach LONG_FROM keys gets no `If` (it would only cost)."""
    from tfcompiler.lower.long_inputs import LONG_FROM

    for max_length, used in [(LONG_FROM - 1, False), (LONG_FROM, True)]:
        spec = parse_spec(spec_text(case).replace("max_length: 40", f"max_length: {max_length}"))
        ops = {node.op_type for node in every_node(compile_spec(spec, target="ort-cpu", cache=False).model.proto.graph)}
        assert ("If" in ops) == (op_type in ops) == used


def test_explain_names_the_loops_the_lowering_chose(tmp_path, capsys):
    """Token chunks and blocked attention by groups of queries are standard Loops: --explain counts them."""
    from conftest import tiny_spec
    from tfcompiler.cli import main

    spec = tmp_path / "chunked.yaml"
    spec.write_text(tiny_spec("decoder", "none").replace(
        "block: {placement: pre}",
        "block: {placement: pre, ffn: {chunk: 4}, attention: {kind: sliding_window, window: 4}}"))
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "--opset", "23", "--explain", "-q",
                 "--no-cache"]) == 0
    assert "  loops: 2 BlockGroups, 2 TokenChunks" in capsys.readouterr().out


def test_the_default_opset_is_the_newest_the_installed_onnxruntime_runs(monkeypatch):
    from tfcompiler.lower.runtime_opset import newest_runtime_opset, probe_model
    from tfcompiler.lower.to_onnx import MAX_OPSET, MIN_OPSET, default_opset

    for opset in range(MIN_OPSET, MAX_OPSET + 1):  # each probe is a valid model of its opset
        onnx.checker.check_model(onnx.load_from_string(probe_model(opset)), full_check=True)
    opset = default_opset()
    ort.InferenceSession(probe_model(opset), providers=[CPU])
    if opset < MAX_OPSET:
        with pytest.raises(Exception):
            ort.InferenceSession(probe_model(opset + 1), providers=[CPU])
    spec = parse_spec(spec_text("rope_half_split_gqa"))
    assert compile_spec(spec).model.opset == opset

    real_session = ort.InferenceSession

    def runtime_up_to(newest):
        def session(model, *args, **kwargs):
            if onnx.load_from_string(model).opset_import[0].version > newest:
                raise RuntimeError("no kernel")
            return real_session(model, *args, **kwargs)
        return session

    for newest, default in [(20, 20), (MIN_OPSET - 1, MIN_OPSET)]:  # __wrapped__: past the per-process cache
        monkeypatch.setattr(ort, "InferenceSession", runtime_up_to(newest))
        assert newest_runtime_opset.__wrapped__(MIN_OPSET, MAX_OPSET) == default
