"""The command line end to end: compile, run, check, inspect, init-weights; determinism, opsets,
external data, metadata and the runtime's model wrapper."""
from __future__ import annotations

import hashlib
import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from conftest import tiny_spec
from tfcompiler.cli import main
from tfc_runtime import Model, random_inputs


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec("encoder-decoder", "sinusoidal"))
    return path


def compile_to(spec, out, *flags) -> bytes:
    assert main(["compile", str(spec), "-o", str(out), "-q", *flags]) == 0
    return out.read_bytes()


def outputs(path, feeds):
    return Model(str(path)).run(feeds)


def test_compile_then_run_prints_shapes_and_checksums(spec, tmp_path, capsys):
    compile_to(spec, tmp_path / "m.onnx")
    assert "compiled tiny (encoder-decoder" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "m.onnx"), "--batch", "2", "--sequence", "7", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "output logits: float32[2, 7, 50] checksum(sum)=" in out and "latency: median" in out


def test_run_with_given_inputs(spec, tmp_path, capsys):
    compile_to(spec, tmp_path / "m.onnx")
    feeds = {"input_ids": np.zeros((1, 3), np.int64), "attention_mask": np.ones((1, 3), np.int64),
             "decoder_input_ids": np.zeros((1, 2), np.int64), "decoder_attention_mask": np.ones((1, 2), np.int64)}
    np.savez(tmp_path / "x.npz", **feeds)
    assert main(["run", str(tmp_path / "m.onnx"), "--inputs", str(tmp_path / "x.npz"), "--repeat", "0"]) == 0
    assert "output logits: float32[1, 2, 50]" in capsys.readouterr().out


def test_check_and_inspect(spec, tmp_path, capsys):
    assert main(["check", str(spec)]) == 0
    assert "ok (tiny: encoder-decoder, encoder 2 layers, decoder 2 layers)" in capsys.readouterr().out
    assert main(["inspect", str(spec), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["parameters"] == 50 * 32 + 2 * (4 * 32 * 32 + 4 * 32 + 2 * 32 * 48 + 48 + 32 + 4 * 32) \
        + 2 * (8 * 32 * 32 + 8 * 32 + 2 * 32 * 48 + 48 + 32 + 6 * 32) + 4 * 32
    assert report["ops"]["attention"] == 6 and report["flops_per_token"] > 0
    assert set(report["inputs"]) == {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}
    compile_to(spec, tmp_path / "m.onnx")
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "m.onnx")]) == 0
    out = capsys.readouterr().out
    onnx_parameters = int(out.split("parameters: ")[1].split(" ")[0].replace(",", ""))
    table = 32 * 32  # the folded sinusoidal table is an initializer too, besides small shape constants
    assert report["parameters"] + table <= onnx_parameters < report["parameters"] + table + 100
    assert "MatMul:" in out and "logits:" in out and "tfcompiler.spec_sha256" in out
    assert "weight_flops_per_token:" in out


def test_seeded_and_init_weights_compile_to_identical_bytes(spec, tmp_path):
    assert main(["init-weights", str(spec), "-o", str(tmp_path / "w.safetensors"), "--seed", "5"]) == 0
    seeded = compile_to(spec, tmp_path / "a.onnx", "--seed", "5")
    given = compile_to(spec, tmp_path / "b.onnx", "--weights", str(tmp_path / "w.safetensors"))
    # only the metadata naming the weights' source differs
    strip = lambda b: onnx.load_from_string(b).graph.SerializeToString()  # noqa: E731
    assert strip(seeded) == strip(given)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_weights_widen_exactly(spec, tmp_path, dtype):
    torch = pytest.importorskip("torch")
    from safetensors.numpy import load_file
    from safetensors.torch import save_file as save_torch

    assert main(["init-weights", str(spec), "-o", str(tmp_path / "w.safetensors")]) == 0
    halves = {name: torch.from_numpy(array).to(getattr(torch, dtype))
              for name, array in load_file(str(tmp_path / "w.safetensors")).items()}
    save_torch(halves, str(tmp_path / "half.safetensors"))
    save_torch({name: half.float() for name, half in halves.items()}, str(tmp_path / "widened.safetensors"))
    strip = lambda b: onnx.load_from_string(b).graph.SerializeToString()  # noqa: E731
    half = compile_to(spec, tmp_path / "a.onnx", "--weights", str(tmp_path / "half.safetensors"))
    widened = compile_to(spec, tmp_path / "b.onnx", "--weights", str(tmp_path / "widened.safetensors"))
    assert strip(half) == strip(widened)


def test_compiling_is_deterministic(spec, tmp_path):
    first = compile_to(spec, tmp_path / "a.onnx", "--seed", "1")
    second = compile_to(spec, tmp_path / "b.onnx", "--seed", "1")
    third = compile_to(spec, tmp_path / "c.onnx", "--seed", "2")
    assert first == second and first != third


def test_external_data_gives_the_same_model(spec, tmp_path):
    compile_to(spec, tmp_path / "inline.onnx")
    compile_to(spec, tmp_path / "split.onnx", "--external-data")
    assert (tmp_path / "split.onnx.data").stat().st_size > (tmp_path / "split.onnx").stat().st_size
    model = Model(str(tmp_path / "inline.onnx"))
    feeds = random_inputs(model, batch=2, sequence=5)
    a, b = outputs(tmp_path / "inline.onnx", feeds), outputs(tmp_path / "split.onnx", feeds)
    np.testing.assert_array_equal(a["logits"], b["logits"])


def test_large_models_go_external_automatically(spec, tmp_path, monkeypatch):
    from tfcompiler.lower import serialize

    monkeypatch.setattr(serialize, "PROTOBUF_LIMIT", (64 << 20) + 1000)  # "2 GB" shrunk to this model
    compile_to(spec, tmp_path / "m.onnx")
    assert (tmp_path / "m.onnx.data").exists()


@pytest.mark.parametrize("opset", [17, 18, 20, 21, 23, 24])
def test_every_opset_checks_and_agrees(spec, tmp_path, opset):
    compile_to(spec, tmp_path / "ref.onnx", "--opset", "17")
    compile_to(spec, tmp_path / "m.onnx", "--opset", str(opset))
    model = onnx.load(str(tmp_path / "m.onnx"))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    assert model.opset_import[0].version == opset
    feeds = random_inputs(Model(str(tmp_path / "ref.onnx")), batch=2, sequence=6)
    feeds["attention_mask"][0, -2:] = 0
    want = outputs(tmp_path / "ref.onnx", feeds)["logits"]
    np.testing.assert_allclose(outputs(tmp_path / "m.onnx", feeds)["logits"], want, atol=1e-5, rtol=0)


def test_metadata_records_version_spec_hash_and_roles(spec, tmp_path):
    compile_to(spec, tmp_path / "m.onnx")
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    from tfcompiler import __version__

    assert props["tfcompiler.version"] == __version__
    assert props["tfcompiler.spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    roles = json.loads(props["tfcompiler.io_roles"])
    assert roles == {"input_ids": "token_ids", "attention_mask": "padding_mask",
                     "decoder_input_ids": "token_ids", "decoder_attention_mask": "padding_mask",
                     "logits": "output"}


def test_node_names_lead_back_to_the_spec(spec, tmp_path):
    compile_to(spec, tmp_path / "m.onnx")
    names = {n.name for n in onnx.load(str(tmp_path / "m.onnx")).graph.node}
    assert "/decoder/layers/1/cross_attention/Attention" in names
    assert "/encoder/layers/0/ffn/up/MatMul" in names


def test_runtime_model_wrapper(spec, tmp_path):
    compile_to(spec, tmp_path / "m.onnx")
    model = Model(str(tmp_path / "m.onnx"), intra_op_threads=1)
    assert model.metadata["tfcompiler.spec_name"] == "tiny"
    assert [p.role for p in model.inputs] == ["token_ids", "padding_mask", "token_ids", "padding_mask"]
    assert model.inputs[0].shape == ("batch_size", "sequence_length")
    result = model.run(random_inputs(model, batch=1, sequence=4))
    assert result["logits"].shape == (1, 4, 50)
    with pytest.raises(ValueError, match="missing \\['decoder_input_ids'"):
        model.run(input_ids=np.zeros((1, 2)), attention_mask=np.ones((1, 2)),
                  decoder_attention_mask=np.ones((1, 2)))


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is present")
def test_cuda_falls_back_to_cpu_with_a_warning(spec, tmp_path):
    compile_to(spec, tmp_path / "m.onnx")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = Model(str(tmp_path / "m.onnx"), device="cuda")
    assert model.providers == ["CPUExecutionProvider"]
    assert any("CUDAExecutionProvider is not available" in str(w.message) for w in caught)


@pytest.fixture
def decoder(tmp_path):
    """A tiny decoder (vocabulary 50, max_length 32) compiled with its KV cache."""
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_spec("decoder"))
    compile_to(path, tmp_path / "d.onnx")
    return tmp_path / "d.onnx"


def decoder_feeds(**changes) -> dict[str, np.ndarray]:
    feeds = {"input_ids": np.array([[5, 6, 7]]), "attention_mask": np.ones((1, 3), np.int64),
             "position_ids": np.arange(3)[None],
             **{f"past_key_values.{i}.{k}": np.zeros((1, 4, 0, 8), np.float32) for i in range(2)
                for k in ("key", "value")}}
    return {**feeds, **changes}


@pytest.mark.parametrize("flags, message", [
    (["--sequence", "33"], "random inputs of --batch 1 --sequence 33: input_ids: axis 1 (sequence_length) is 33, "
                           "over the model's max_length 32"),
    (["--sequence", "-5"], "argument --sequence: expected an integer >= 1, got '-5'"),
    (["--sequence", "0"], "argument --sequence: expected an integer >= 1, got '0'"),
    (["--batch", "0"], "argument --batch: expected an integer >= 1, got '0'"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
])
def test_run_refuses_bad_arguments(decoder, capsys, flags, message):
    try:
        code = main(["run", str(decoder), "--repeat", "0", *flags])
    except SystemExit as usage:  # argparse's own exit, for a value an argument's type refuses
        code = usage.code
    assert code == 2
    captured = capsys.readouterr()
    assert f"tfc run: error: {message}" in captured.err and "Traceback" not in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("write, message", [
    (lambda path: np.savez(path, ids=np.zeros((1, 3), np.int64)),
     "inputs do not fit the model: missing ['input_ids', 'attention_mask', 'position_ids'"),
    (lambda path: path.write_text("input_ids: [5, 6, 7]"), "not an .npz of named arrays (neither an .npz nor an "
                                                           ".npy file)"),
    (lambda path: np.savez(path, **decoder_feeds(input_ids=np.array([[5, 50, 7]]))),
     "input_ids[0, 1]: expected a token id in the vocabulary [0, 50), got 50"),
    (lambda path: np.savez(path, **decoder_feeds(input_ids=np.array([[5, 6, -1]]))),
     "input_ids[0, 2]: expected a token id in the vocabulary [0, 50), got -1"),
    (lambda path: np.savez(path, **decoder_feeds(attention_mask=np.array([[1, 0.5, 1]]))),
     "attention_mask[0, 1]: expected 0 or 1 (1 for a token, 0 for padding), got 0.5"),
    (lambda path: np.savez(path, **decoder_feeds(attention_mask=np.array([[1, 1, 3]]))),
     "attention_mask[0, 2]: expected 0 or 1 (1 for a token, 0 for padding), got 3"),
])
def test_run_refuses_inputs_files_that_do_not_fit(decoder, tmp_path, capsys, write, message):
    write(tmp_path / "x.npz")
    assert main(["run", str(decoder), "--inputs", str(tmp_path / "x.npz"), "--repeat", "0"]) == 2
    captured = capsys.readouterr()
    assert f"tfc run: error: --inputs {tmp_path / 'x.npz'}: {message}" in captured.err, captured.err
    assert captured.out == ""


def test_run_at_the_limits_still_runs(decoder, tmp_path, capsys):
    assert main(["run", str(decoder), "--sequence", "32", "--batch", "1", "--repeat", "0"]) == 0
    assert "output logits: float32[1, 32, 50]" in capsys.readouterr().out
    np.savez(tmp_path / "x.npz", **decoder_feeds(input_ids=np.array([[0, 49, 7]]),
                                                 attention_mask=np.array([[0.0, 1.0, 1.0]])))
    assert main(["run", str(decoder), "--inputs", str(tmp_path / "x.npz"), "--repeat", "0"]) == 0
    assert "output logits: float32[1, 3, 50]" in capsys.readouterr().out


@pytest.mark.parametrize("flags, message", [
    (["--dump-after", "fuse_skipnorm"], "--dump-after fuse_skipnorm: no such pass; did you mean fuse_skip_norm? "
                                        "(passes: convert_precision, eliminate_common_subexpressions,"),
    (["--dump-after", "fold_constants", "--pipeline", "none"],
     "--dump-after fold_constants: that pass does not run with these flags (no pass runs with --pipeline none)"),
    (["--dump-after", "all", "--pipeline", "none"], "--dump-after all: no pass runs with --pipeline none"),
    (["--dump-after", "quantize_weights"], "--dump-after quantize_weights: that pass runs with --quantize int8 or "
                                           "int4 only"),
])
def test_dump_after_a_pass_that_does_not_run_is_an_error(spec, tmp_path, capsys, flags, message):
    assert main(["compile", str(spec), "-o", str(tmp_path / "m.onnx"), "-q", *flags]) == 1
    assert f"error: {message}" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_dump_after_a_pass_that_runs_prints_its_ir(spec, tmp_path, capsys):
    compile_to(spec, tmp_path / "m.onnx", "--dump-after", "fold_constants", "--dump-after", "eliminate_dead_code")
    out = capsys.readouterr().out
    assert "--- IR after fold_constants ---" in out and "--- IR after eliminate_dead_code ---" in out


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="CUDA is present")
def test_cli_says_the_cuda_fallback_in_one_line(decoder, capsys):
    line = "tfc: warning: CUDAExecutionProvider is not available; running on CPU\n"
    assert main(["run", str(decoder), "--device", "cuda", "--repeat", "0"]) == 0
    assert capsys.readouterr().err == line  # no file:line prefix, no echoed source line
    assert main(["generate", str(decoder), "--input-ids", "[[5, 6]]", "--max-new-tokens", "2", "--device", "cuda"]) == 0
    assert capsys.readouterr().err.startswith(line)
