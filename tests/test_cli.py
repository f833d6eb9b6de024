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
