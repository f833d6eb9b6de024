"""`tfc export triton MODEL -o REPO`: a Triton Inference Server model repository that serves a compiled model
on Triton's onnxruntime backend. MODEL is a compiled .onnx (its external data beside it) or a model folder
(`tfc compile -o DIR/`, model_folder.py). The layout is the one Triton's docs give for ONNX models
(user_guide/model_repository.md, "ONNX Models"):

    REPO/<name>/config.pbtxt                      the configuration (triton_config.py)
    REPO/<name>/1/model.onnx                      version 1: the model as compiled, byte for byte
    REPO/<name>/1/model.onnx/model.onnx           ... or, when its weights are external data, a folder named
    REPO/<name>/1/model.onnx/model.onnx.data      model.onnx holding the model file, named model.onnx, and
                                                  the data files it names, at the places it names them

An encoder-decoder's folder (encoder_model.onnx, decoder_model.onnx) gives two Triton models, <name>-encoder
and <name>-decoder, which the client chains as the runtime does (tfc_runtime/generation_seq2seq.py): the
encoder runs once per source; each decoder request takes the encoder's `present.N.encoder.key/value` as its
`past_key_values.N.encoder.key/value` (and an LSTM decoder's first `past_state.N.decoder.*` is the encoder's
`present_state.N.decoder.*`) and the source's mask as `encoder_attention_mask`. Both configurations record
the chain (parameters tfcompiler.triton.decoder, tfcompiler.triton.from_encoder).

The repository is written atomically: everything is staged in a hidden folder first, which then becomes
REPO (a new REPO), or whose model folders replace REPO/<name> one rename each (an existing REPO keeps its
other models). An error leaves REPO as it was.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import onnx

from ..errors import OutputError, TfcError
from ..model_folder import MODEL, PART_FILES, present_of
from .onnx_ports import Interface, interface
from .triton_config import ModelConfig, Settings, model_config

VERSION = "1"
MODEL_FILE = "model.onnx"  # the onnxruntime backend's default_model_filename
# a name that is one folder on every file system and one path segment in Triton's HTTP routes
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or a digit, at most 128"


@dataclass(frozen=True)
class Source:
    """One ONNX file to serve: its graph without the weights, and the external data files it names."""

    path: Path
    proto: onnx.ModelProto
    data: tuple[str, ...]

    @property
    def face(self) -> Interface:
        return interface(self.proto)


@dataclass
class Exported:
    files: list[Path]
    configs: list[ModelConfig]
    notes: list[str]


def export_triton(model: str, repository: str, settings: Settings, name: str | None = None) -> Exported:
    """Write the Triton model repository of ``model`` (a .onnx file or a model folder) at ``repository``."""
    sources = read_sources(Path(model))
    base = name if name is not None else default_name(sources, Path(model))
    if not NAME.fullmatch(base) or base.strip(".") != base:
        where = "--name" if name is not None else f"{model}: its name (give --name NAME)"
        raise TfcError(f"{where}: {base!r} is not a Triton model name ({NAME_RULE})")
    if set(sources) == {""}:
        configs = [model_config(sources[""].face, base, settings)]
    else:
        configs = chained_configs(sources["encoder"].face, sources["decoder"].face, base, settings)
    models = dict(zip((config.name for config in configs), sources.values()))
    files = write_repository(Path(repository), {config.name: (models[config.name], config.text())
                                                for config in configs})
    return Exported(files, configs, [note for config in configs for note in config.notes])


def chained_configs(encoder: Interface, decoder: Interface, base: str, settings: Settings) -> list[ModelConfig]:
    """An encoder-decoder's two configurations: what the decoder takes from the encoder's outputs, recorded."""
    names = {"encoder": f"{base}-encoder", "decoder": f"{base}-decoder"}
    outputs = {port.name for port in encoder.outputs}
    given = {port.name: present_of(port.name) for port in decoder.inputs if present_of(port.name) in outputs}
    source_mask, mask = encoder.input("padding_mask", "attention_mask"), decoder.input("encoder_mask",
                                                                                      "encoder_attention_mask")
    chain = {"model": names["encoder"], "outputs": given,
             "inputs": {mask.name: source_mask.name} if mask is not None and source_mask is not None else {}}
    return [model_config(encoder, names["encoder"], settings,
                         parameters={"tfcompiler.triton.decoder": names["decoder"]}),
            model_config(decoder, names["decoder"], settings, given,
                         {"tfcompiler.triton.from_encoder": json.dumps(chain, sort_keys=True)})]


def read_sources(path: Path) -> dict[str, Source]:
    """{"": the model} for a .onnx file or a folder's model.onnx; {"encoder", "decoder"} for an encoder-decoder's."""
    if not path.exists():
        raise TfcError(f"{path}: no such file or folder")
    if path.is_file():
        return {"": read_source(path)}
    if (path / MODEL).is_file():
        return {"": read_source(path / MODEL)}
    parts = {part: path / file for part, file in PART_FILES.items()}
    if all(file.is_file() for file in parts.values()):
        return {part: read_source(file) for part, file in parts.items()}
    raise TfcError(f"{path}: a model folder holds {MODEL}, or an encoder-decoder's "
                   f"{' and '.join(PART_FILES.values())}; this one holds neither")


def read_source(path: Path) -> Source:
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001  (protobuf's and onnx's ways of saying "not a model")
        raise TfcError(f"{path}: not an ONNX model ({type(error).__name__}: {error})") from None
    if not proto.graph.output:
        raise TfcError(f"{path}: not an ONNX model (no graph outputs)")
    data = []
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
            parts = PurePosixPath(location.replace("\\", "/")).parts
            if not location or PurePosixPath(location).is_absolute() or ".." in parts:
                raise TfcError(f"{path}: initializer {tensor.name} has its data at {location!r}, not at a place "
                               "beside the model")
            if not (path.parent / location).is_file():
                raise TfcError(f"{path}: initializer {tensor.name} has its data in {path.parent / location}, which "
                               "does not exist")
            data.append(location)
    return Source(path, proto, tuple(dict.fromkeys(data)))


def _tensors(graph: onnx.GraphProto):
    """Every tensor that may hold weights: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            yield from ([attribute.t] if attribute.HasField("t") else [])
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(subgraph)


def default_name(sources: dict[str, Source], path: Path) -> str:
    """The spec's name (metadata tfcompiler.spec_name), else the file's or the folder's."""
    spec_name = next(iter(sources.values())).face.metadata.get("tfcompiler.spec_name")
    return spec_name or (path.stem if path.is_file() else path.resolve().name)


def write_repository(repository: Path, models: dict[str, tuple[Source, str]]) -> list[Path]:
    """Stage every model's folder, then put them in place (see the module docstring); the files written."""
    if repository.exists() and not repository.is_dir():
        raise OutputError(f"{repository}: cannot write a model repository: it is a file")
    parent = repository if repository.is_dir() else repository.parent
    if not parent.is_dir():
        raise OutputError(f"{repository}: cannot write: folder {parent} does not exist")
    try:
        stage = Path(tempfile.mkdtemp(prefix=".tfc-triton.", suffix=".tmp", dir=parent))
    except OSError as e:
        raise OutputError(f"{repository}: cannot write: {e.strerror}") from None
    try:
        files = [path for name, (source, text) in models.items() for path in _stage_model(stage / name, source, text)]
        if repository.is_dir():
            _swap_in(stage, repository, list(models))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; the folder should look like any new one
            os.replace(stage, repository)
    except OSError as e:
        raise OutputError(f"{repository}: cannot write: {e.strerror}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [repository / path.relative_to(stage) for path in files]


def _stage_model(folder: Path, source: Source, config_text: str) -> list[Path]:
    version = folder / VERSION
    version.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(config_text, encoding="utf-8")
    if not source.data:
        shutil.copyfile(source.path, version / MODEL_FILE)
        return [folder / "config.pbtxt", version / MODEL_FILE]
    model = version / MODEL_FILE  # a folder named model.onnx: the model file and its data files
    model.mkdir()
    shutil.copyfile(source.path, model / MODEL_FILE)
    for location in source.data:
        (model / location).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source.path.parent / location, model / location)
    return [folder / "config.pbtxt", model / MODEL_FILE, *(model / location for location in source.data)]


def _swap_in(stage: Path, repository: Path, names: list[str]) -> None:
    """Each staged model folder replaces REPO/<name>, the old one moving into the stage (removed after); a
    failed rename puts back what was already swapped."""
    olds = stage / ".old"  # no model name starts with a dot
    olds.mkdir()
    moved = []  # [name, an old one was there, the new one is in]
    try:
        for name in names:
            target = repository / name
            moved.append([name, os.path.lexists(target), False])
            if moved[-1][1]:
                os.replace(target, olds / name)
            os.replace(stage / name, target)
            moved[-1][2] = True
    except OSError:
        for name, had, new_in in reversed(moved):
            if new_in:
                os.replace(repository / name, stage / name)
            if had:
                os.replace(olds / name, repository / name)
        raise
