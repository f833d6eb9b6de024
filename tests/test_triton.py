"""`tfc export triton`: the Triton model repository of every shipped spec (shrunk, compiled to a model folder)
parses as Triton's ModelConfig protobuf (tritonclient's model_config_pb2) and matches its ONNX model field by
field, checked as Triton's onnxruntime backend and core check a configuration when they load it (the inputs
onnxruntime asks for, data types, dims with the batch axis, the state pairs and their first shapes); the
sequence batcher's protocol (a state starts at its initial_state with variable axes 1, then is fed the
previous request's output), run here on onnxruntime, gives the runtime's logits; an encoder-decoder's two
models chained as their configurations say give the one-model forward's logits; bad input leaves no
repository behind. Triton itself does not run here: what it does with the repository is read from its docs
and sources, not observed."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from conftest import ROOT
from tfcompiler.cli import main
from tfcompiler.compiler import compile_spec
from tfcompiler.language.shrink import shrink_spec, shrink_text

SPECS = sorted((ROOT / "specs").glob("*.yaml"))
ORT_TYPES = {"tensor(float)": "TYPE_FP32", "tensor(float16)": "TYPE_FP16", "tensor(int64)": "TYPE_INT64",
             "tensor(int32)": "TYPE_INT32", "tensor(bool)": "TYPE_BOOL", "tensor(double)": "TYPE_FP64"}
NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}


def present_name(past: str) -> str:
    """The pairing rule, written out here: past_key_values.N.x -> present.N.x, past_X -> present_X."""
    match = re.fullmatch(r"past_key_values\.(.+)", past)
    return f"present.{match.group(1)}" if match else re.sub(r"^past_", "present_", past)


def parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="utf-8"), model_config_pb2.ModelConfig())


def onnx_shape(port) -> list[int]:
    """onnxruntime's view of a shape, as the backend compares it: -1 for every dynamic axis."""
    return [axis if isinstance(axis, int) else -1 for axis in port.shape]


def version_model(folder: Path) -> Path:
    """The model file Triton's onnxruntime backend loads: 1/model.onnx, or 1/model.onnx/model.onnx."""
    path = folder / "1" / "model.onnx"
    return path / "model.onnx" if path.is_dir() else path


def check_dims(name: str, model_shape: list[int], dims: list[int], batch: int, exact: bool) -> None:
    """The onnxruntime backend's CompareDimsSupported, and core's rule that a dim is >= 1 or -1."""
    assert dims and all(d >= 1 or d == -1 for d in dims), (name, dims)
    full = [-1, *dims] if batch > 0 else dims
    if batch > 0:
        assert model_shape and model_shape[0] == -1, (name, model_shape)
    assert len(full) == len(model_shape), (name, model_shape, full)
    for model_dim, dim in zip(model_shape, full):
        assert model_dim == dim if exact or model_dim != -1 else True, (name, model_shape, full)


def check_model(folder: Path, source: Path) -> model_config_pb2.ModelConfig:
    """Every field of REPO/<name>/config.pbtxt against the model it serves; returns the parsed config."""
    config = parse(folder / "config.pbtxt")
    assert config.name == folder.name
    assert (config.platform, config.backend) == ("onnxruntime_onnx", "onnxruntime")
    served = version_model(folder)
    assert served.read_bytes() == source.read_bytes()  # the model as compiled
    for data in served.parent.glob("*.data"):  # its external data beside it, as the model names it
        assert data.read_bytes() == (source.parent / data.name).read_bytes()
    session = ort.InferenceSession(str(served))  # what the backend sees: no overridable initializer among inputs
    inputs, outputs = {p.name: p for p in session.get_inputs()}, {p.name: p for p in session.get_outputs()}
    batch = config.max_batch_size
    states = config.sequence_batching.state
    assert len(config.input) + len(states) == len(inputs)  # the backend's expected_input_cnt
    assert {i.name for i in config.input} | {s.input_name for s in states} == set(inputs)
    assert not any(i.optional for i in config.input)
    for io in config.input:
        assert model_config_pb2.DataType.Name(io.data_type) == ORT_TYPES[inputs[io.name].type], io.name
        check_dims(io.name, onnx_shape(inputs[io.name]), list(io.dims), batch, exact=False)
    state_outputs = {s.output_name for s in states}
    assert {o.name for o in config.output} == set(outputs) - state_outputs  # every other output is served
    for io in config.output:
        assert model_config_pb2.DataType.Name(io.data_type) == ORT_TYPES[outputs[io.name].type], io.name
        check_dims(io.name, onnx_shape(outputs[io.name]), list(io.dims), batch, exact=True)
    for state in states:
        past, present = inputs[state.input_name], outputs[state.output_name]
        assert state.output_name == present_name(state.input_name)
        assert model_config_pb2.DataType.Name(state.data_type) == ORT_TYPES[past.type] == ORT_TYPES[present.type]
        check_dims(state.input_name, onnx_shape(past), list(state.dims), batch, exact=True)
        (initial,) = state.initial_state  # zeros, at the shape Triton gives a sequence's first state
        assert initial.zero_data and initial.name and initial.data_type == state.data_type
        assert list(initial.dims) == [1 if d == -1 else d for d in state.dims]
    carried = {name for name in inputs if name.startswith("past_") and present_name(name) in outputs}
    meta = session.get_modelmeta().custom_metadata_map
    parameters = {key: value.string_value for key, value in config.parameters.items()}
    assert {key: parameters[key] for key in meta} == dict(meta)  # the model's metadata, spec name and hash among it
    if states:
        assert {s.input_name for s in states} <= carried and not config.HasField("dynamic_batching")
        assert config.sequence_batching.oldest.max_candidate_sequences == max(batch, 1)
        assert list(config.sequence_batching.oldest.preferred_batch_size) == ([batch] if batch else [])
    else:
        assert not config.HasField("sequence_batching")
        assert config.HasField("dynamic_batching") == (batch > 0)
        if batch:
            assert list(config.dynamic_batching.preferred_batch_size) == [batch]
    recorded = json.loads(parameters.get("tfcompiler.triton.state", "{}"))
    assert set(recorded) == carried  # every carried value, kept by Triton or by the client
    assert {past for past, entry in recorded.items() if entry["kept_by"] == "triton"} == {s.input_name for s in states}
    assert all(entry["present"] == present_name(past) for past, entry in recorded.items())
    return config


def compile_folder(spec: Path, tmp_path: Path, *flags: str) -> Path:
    shrunk = tmp_path / f"{spec.stem}.yaml"
    shrunk.write_text(shrink_text(spec.read_text(encoding="utf-8")), encoding="utf-8")
    folder = tmp_path / spec.stem
    assert main(["compile", str(shrunk), "-o", f"{folder}/", "-q", *flags]) == 0
    return folder


def served_models(folder: Path) -> dict[str, Path]:
    """{Triton model name suffix: its .onnx in the model folder}."""
    if (folder / "model.onnx").is_file():
        return {"": folder / "model.onnx"}
    return {"-encoder": folder / "encoder_model.onnx", "-decoder": folder / "decoder_model.onnx"}


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_every_shipped_spec_exports_a_repository_that_matches_its_model(spec, tmp_path, capsys):
    folder = compile_folder(spec, tmp_path)
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(folder), "-o", str(repo), "--name", spec.stem]) == 0, \
        capsys.readouterr().err
    models = served_models(folder)
    assert sorted(p.name for p in repo.iterdir()) == sorted(spec.stem + suffix for suffix in models)
    for suffix, source in models.items():
        config = check_model(repo / (spec.stem + suffix), source)
        assert config.max_batch_size == 8 and [(g.count, g.kind) for g in config.instance_group] == \
            [(1, model_config_pb2.ModelInstanceGroup.KIND_CPU)]
        if suffix == "-decoder":
            chain = json.loads(config.parameters["tfcompiler.triton.from_encoder"].string_value)
            encoder = parse(repo / f"{spec.stem}-encoder" / "config.pbtxt")
            assert chain["model"] == encoder.name
            assert encoder.parameters["tfcompiler.triton.decoder"].string_value == config.name
            assert set(chain["outputs"].values()) <= {o.name for o in encoder.output}
            assert set(chain["outputs"]) <= {i.name for i in config.input}  # fed by the client, never a state
            assert chain["inputs"] == {"encoder_attention_mask": "attention_mask"}
        if config.sequence_batching.state:
            check_sequence_protocol(version_model(repo / (spec.stem + suffix)), config)


def feeds_for(session, roles: dict, batch: int, length: int, rng) -> dict[str, np.ndarray]:
    """Random inputs of the roles a decoder's call takes but its carried values (the encoder's gifts too)."""
    feeds = {}
    for port in session.get_inputs():
        role = roles.get(port.name, "")
        if role == "token_ids":
            feeds[port.name] = rng.integers(0, 32, (batch, length))
        elif role in ("cross_key", "cross_value"):
            feeds[port.name] = rng.standard_normal((batch, port.shape[1], 5, port.shape[3])).astype(np.float32)
        elif role == "encoder_mask":
            feeds[port.name] = np.ones((batch, 5), np.int64)
    return feeds


def check_sequence_protocol(model: Path, config) -> None:
    """Three requests of one sequence batch, run as Triton's sequence batcher feeds them (each state from its
    initial_state, variable axes 1, then from the previous output; the attention mask masking the first
    request's zero KV position), against the runtime's start (empty pasts, zero states): the same logits."""
    session = ort.InferenceSession(str(model))
    roles = json.loads(session.get_modelmeta().custom_metadata_map["tfcompiler.io_roles"])
    inputs = {p.name: p for p in session.get_inputs()}
    outputs = [p.name for p in session.get_outputs()]
    first = int(config.parameters["tfcompiler.triton.first_past_length"].string_value)
    mask = next((n for n, p in inputs.items() if roles.get(n) == "padding_mask"), None)
    positions = next((n for n, p in inputs.items() if roles.get(n) == "position_ids"), None)
    rng, batch = np.random.default_rng(0), 2
    triton = {s.input_name: np.zeros((batch, *s.initial_state[0].dims), NUMPY[inputs[s.input_name].type])
              for s in config.sequence_batching.state}
    runtime = {name: np.zeros([batch if "batch" in str(a) else 0 if isinstance(a, str) else a
                               for a in inputs[name].shape], NUMPY[inputs[name].type]) for name in triton}
    history = {"triton": np.zeros((batch, first), np.int64), "runtime": np.zeros((batch, 0), np.int64)}
    seen = 0
    for length in (3, 1, 1):
        feeds = feeds_for(session, roles, batch, length, rng)
        if positions:
            feeds[positions] = np.tile(np.arange(seen, seen + length), (batch, 1))
        results = {}
        for who, pasts in (("triton", triton), ("runtime", runtime)):
            history[who] = np.concatenate([history[who], np.ones((batch, length), np.int64)], axis=1)
            call = {**feeds, **pasts}
            if mask:
                covered = inputs[mask].shape[-1] != inputs[next(n for n in feeds if roles[n] == "token_ids")].shape[-1]
                kv = [v.shape[2] for n, v in pasts.items() if roles[n] in ("past_key", "past_value")]
                width = length + (max(kv) if kv else seen) if covered else length
                call[mask] = history[who][:, -width:]
            results[who] = dict(zip(outputs, session.run(None, call)))
            pasts.update({s.input_name: results[who][s.output_name] for s in config.sequence_batching.state})
        for name in (o.name for o in config.output):
            np.testing.assert_allclose(results["triton"][name], results["runtime"][name], rtol=1e-4, atol=1e-4,
                                       err_msg=name)
        seen += length


@pytest.mark.parametrize("spec", ["t5-small", "lstm-seq2seq"])
def test_encoder_decoder_models_chained_as_configured_give_the_one_model_forward(spec, tmp_path):
    """The encoder's outputs feed the decoder as from_encoder says (a state the client carries starts from the
    encoder's output, one Triton keeps from its zeros); the decoder's outputs for a whole target in one request
    are the uncached encoder-decoder's."""
    folder, repo = compile_folder(ROOT / "specs" / f"{spec}.yaml", tmp_path), tmp_path / "repo"
    assert main(["export", "triton", str(folder), "-o", str(repo), "--name", spec, "-q"]) == 0
    config = parse(repo / f"{spec}-decoder" / "config.pbtxt")
    chain = json.loads(config.parameters["tfcompiler.triton.from_encoder"].string_value)
    encoder = ort.InferenceSession(str(version_model(repo / f"{spec}-encoder")))
    decoder = ort.InferenceSession(str(version_model(repo / f"{spec}-decoder")))
    whole = ort.InferenceSession(compile_spec(shrink_spec(ROOT / "specs" / f"{spec}.yaml"), cache=False)
                                 .model.to_proto().SerializeToString())
    rng = np.random.default_rng(1)
    source, target = rng.integers(0, 32, (2, 5)), rng.integers(0, 32, (2, 4))
    output = config.output[0].name  # logits, or a head-less decoder's last_hidden_state
    expected = whole.run([output], {"input_ids": source, "attention_mask": np.ones_like(source),
                                      "decoder_input_ids": target, "decoder_attention_mask": np.ones_like(target)})[0]
    encoded = dict(zip([o.name for o in encoder.get_outputs()],
                       encoder.run(None, {"input_ids": source, "attention_mask": np.ones_like(source)})))
    key = "tfcompiler.triton.first_past_length"
    first = int(config.parameters[key].string_value) if key in config.parameters else 0
    feeds = {decoder_input: encoded[output] for decoder_input, output in chain["outputs"].items()}
    feeds |= {decoder_input: np.ones_like(source) for decoder_input in chain["inputs"]}
    feeds |= {s.input_name: np.zeros((2, *s.initial_state[0].dims), np.float32) for s in config.sequence_batching.state}
    feeds |= {"input_ids": target, "attention_mask": np.concatenate([np.zeros((2, first), np.int64),
                                                                     np.ones_like(target)], axis=1)}
    if "position_ids" in {i.name for i in config.input}:
        feeds["position_ids"] = np.tile(np.arange(4), (2, 1))
    np.testing.assert_allclose(decoder.run([output], feeds)[0], expected, rtol=1e-4, atol=1e-4)


def test_external_weights_go_in_a_model_onnx_folder_and_load_from_it(tmp_path):
    folder = compile_folder(ROOT / "specs" / "gpt2-small.yaml", tmp_path, "--external-data")
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(folder), "-o", str(repo), "-q"]) == 0
    (model,) = repo.iterdir()
    version = model / "1" / "model.onnx"
    assert version.is_dir() and sorted(p.name for p in version.iterdir()) == ["model.onnx", "model.onnx.data"]
    check_model(model, folder / "model.onnx")  # loads on onnxruntime from there, its weights found beside it
    first = (model / "config.pbtxt").read_bytes()
    assert main(["export", "triton", str(folder), "-o", str(repo), "-q"]) == 0
    assert (model / "config.pbtxt").read_bytes() == first  # the same bytes again, the model replaced in place
    assert [p.name for p in repo.iterdir()] == [model.name]  # nothing staged is left behind


def test_flags_set_batching_instances_device_and_who_keeps_the_state(tmp_path):
    folder = compile_folder(ROOT / "specs" / "gpt2-small.yaml", tmp_path)
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(folder), "-o", str(repo), "--name", "client", "--state", "client",
                 "--max-batch-size", "4", "--instances", "3", "--device", "cuda", "--max-queue-delay-us", "250",
                 "-q"]) == 0
    config = check_model(repo / "client", folder / "model.onnx")
    assert not config.HasField("sequence_batching") and config.max_batch_size == 4
    assert {i.name for i in config.input} >= {"past_key_values.0.key", "past_key_values.1.value"}
    assert {o.name for o in config.output} >= {"present.0.key", "present.1.value"}
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    assert [(g.count, g.kind) for g in config.instance_group] == [(3, model_config_pb2.ModelInstanceGroup.KIND_GPU)]
    assert main(["export", "triton", str(folder), "-o", str(repo), "--name", "unbatched", "--max-batch-size", "0",
                 "-q"]) == 0
    config = check_model(repo / "unbatched", folder / "model.onnx")  # every axis in dims, the batch's too
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, -1]
    assert [list(s.initial_state[0].dims) for s in config.sequence_batching.state][0] == [1, 4, 1, 8]
    assert sorted(p.name for p in repo.iterdir()) == ["client", "unbatched"]  # the first model stays


def test_cuda_only_models_default_to_gpu_instances_and_refuse_cpu(tmp_path, capsys):
    folder = compile_folder(ROOT / "specs" / "gpt2-small.yaml", tmp_path, "--target", "ort-cuda")
    repo = tmp_path / "repo"
    assert main(["export", "triton", str(folder), "-o", str(repo), "-q"]) == 0
    config = parse(next(repo.iterdir()) / "config.pbtxt")
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
    assert main(["export", "triton", str(folder), "-o", str(tmp_path / "cpu"), "--device", "cpu"]) == 1
    assert "runs on CUDA only (compiled for --target ort-cuda)" in capsys.readouterr().err
    assert not (tmp_path / "cpu").exists()


def test_state_triton_cannot_start_is_left_to_the_client_or_refused(tmp_path, capsys):
    folder = compile_folder(ROOT / "specs" / "transformer-xl-decoder.yaml", tmp_path)
    assert main(["export", "triton", str(folder), "-o", str(tmp_path / "repo")]) == 0
    err = capsys.readouterr().err
    assert "the client carries the state" in err and "which no input of the model masks" in err
    assert main(["export", "triton", str(folder), "-o", str(tmp_path / "implicit"), "--state", "implicit"]) == 1
    assert "Triton cannot keep this model's state: past_memories.0" in capsys.readouterr().err
    assert not (tmp_path / "implicit").exists()


def fixed_shape_model(path: Path) -> Path:
    """A model whose input has no batch axis: x (3, 4) -> y."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [3, 4])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [3, 4])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "fixed", [x], [y])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_model_without_a_batch_axis_needs_max_batch_size_0(tmp_path, capsys):
    model = fixed_shape_model(tmp_path / "fixed.onnx")
    assert main(["export", "triton", str(model), "-o", str(tmp_path / "repo")]) == 1
    assert "x cannot be batched so (its first axis is 3); give --max-batch-size 0" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()
    assert main(["export", "triton", str(model), "-o", str(tmp_path / "repo"), "--max-batch-size", "0", "-q"]) == 0
    config = check_model(tmp_path / "repo" / "fixed", model)  # named after the file: no spec name in it
    assert list(config.input[0].dims) == [3, 4] and not config.HasField("dynamic_batching")


@pytest.mark.parametrize("case", ["missing model", "not onnx", "odd name", "repo is a file", "unwritable repo",
                                  "empty folder"])
def test_bad_input_is_one_clear_error_and_leaves_no_repository(case, tmp_path, capsys):
    model, repo = fixed_shape_model(tmp_path / "fixed.onnx"), tmp_path / "repo"
    args = {"missing model": [str(tmp_path / "absent.onnx"), "-o", str(repo)],
            "not onnx": [str(tmp_path / "spec.yaml"), "-o", str(repo)],
            "odd name": [str(model), "-o", str(repo), "--name", "my model/1"],
            "repo is a file": [str(model), "-o", str(tmp_path / "spec.yaml")],
            "unwritable repo": [str(model), "-o", "/proc/tfc-triton-repo"],
            "empty folder": [str(tmp_path / "empty"), "-o", str(repo)]}[case]
    (tmp_path / "spec.yaml").write_text("tfc: 1\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(["export", "triton", *args, "--max-batch-size", "0"]) == 1
    err = capsys.readouterr().err
    expected = {"missing model": "absent.onnx: no such file or folder",
                "not onnx": "spec.yaml: not an ONNX model",
                "odd name": "--name: 'my model/1' is not a Triton model name",
                "repo is a file": "cannot write a model repository: it is a file",
                "unwritable repo": "/proc/tfc-triton-repo: cannot write",
                "empty folder": "holds neither"}[case]
    assert err.startswith("error: ") and expected in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no repository, no staged folder


def test_a_failed_write_leaves_the_repository_as_it_was(tmp_path, monkeypatch, capsys):
    model, repo = fixed_shape_model(tmp_path / "fixed.onnx"), tmp_path / "repo"
    assert main(["export", "triton", str(model), "-o", str(repo), "--max-batch-size", "0", "-q"]) == 0
    before = {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()}

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(shutil, "copyfile", full_disk)
    assert main(["export", "triton", str(model), "-o", str(repo), "--max-batch-size", "0", "--instances", "2"]) == 1
    assert "cannot write: No space left on device" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in repo.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in repo.iterdir()) == ["fixed"]
