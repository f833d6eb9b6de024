"""The model folder that `tfc compile SPEC -o DIR/` writes and the runtime loads as one thing:

    DIR/model.onnx            the model (and model.onnx.data, its weights, when they go to external data);
                              an encoder-decoder's two: encoder_model.onnx, decoder_model.onnx (and model.onnx
                              too where its head gives something after generation: a TTS post-net)
    DIR/generation.json       for an LM head over a decoder: the spec's `generation` ids, max_length,
                              the cache (metadata tfcompiler.cache) and the tensors each call hands to
                              the next, {past input: {present output, shape (symbolic axes), dtype}}
    DIR/genai_config.json     where onnxruntime-genai can run the model (genai_config.py)
    DIR/tokenizer.json, ...   the files of the spec's `tokenizer` folder, as they are

The folder is written atomically: every file is staged in a hidden folder first, which then becomes
DIR (a new DIR), or whose files are moved into DIR one rename each (an existing DIR, which may hold
other files: a spec and weights from `tfc import-hf`). An error leaves DIR as it was. The same inputs
give the same bytes: the JSON files have sorted keys, the tokenizer files are copied byte for byte.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from onnx import helper

from .atomic import atomic_folder
from .errors import OutputError, TfcError
from .genai_config import genai_config, why_not

MODEL = "model.onnx"
PART_FILES = {"encoder": "encoder_model.onnx", "decoder": "decoder_model.onnx"}
WHOLE = "whole"  # beside the parts, the one-graph model, where the head gives something after generation
GENERATION = "generation.json"
GENAI = "genai_config.json"
# what a model folder of an earlier compile may hold that this one must not leave behind, stale
OWNED = tuple(name + suffix for name in (MODEL, *PART_FILES.values()) for suffix in ("", ".data")) + (GENERATION, GENAI)
# Hugging Face's tokenizer files: the fast tokenizer, its settings, and the slow tokenizers' vocabularies
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model",
                   "spiece.model", "sentencepiece.bpe.model")


@dataclass
class Written:
    """The files of a model folder, and what the user should know about it (why no genai_config.json)."""

    files: list[Path]
    notes: list[str] = field(default_factory=list)


def folder_output(output: str) -> Path | None:
    """The folder `-o` names (a trailing slash, or an existing folder), or None for a file."""
    path = Path(output)
    if output.endswith(("/", os.sep)):
        if path.exists() and not path.is_dir():
            raise OutputError(f"{output}: cannot write a model folder: {path} is a file")
        return path
    return path if path.is_dir() else None


def write_model_folder(compiled, folder: str | Path, external_data: bool | None = None) -> Written:
    """Write the model folder of ``compiled`` at ``folder`` atomically (see the module docstring):
    one Compiled, or an encoder-decoder's {"encoder": Compiled, "decoder": Compiled[, WHOLE: Compiled]}."""
    folder = Path(folder)
    models = {PART_FILES.get(part, MODEL): model for part, model in compiled.items()} if isinstance(compiled, dict) \
        else {MODEL: compiled}
    compiled = models.get(PART_FILES["decoder"], compiled)  # what generation reads
    tokenizer = tokenizer_files(compiled.spec)  # a missing tokenizer fails before anything is written
    names = []

    def into_existing(stage: Path, folder: Path) -> None:
        for name in names:  # one rename each: a file is the old one or the new one, never a mix
            os.replace(stage / name, folder / name)
        for name in set(OWNED) - set(names):
            (folder / name).unlink(missing_ok=True)

    stage = None
    try:
        with atomic_folder(folder, ".tfc-model-folder.", into_existing) as stage:
            written = _write(models, stage, external_data, tokenizer)
            names += [path.name for path in written.files]
    except OutputError as e:  # the model's own writer names the staged file: name the one it stands for
        raise OutputError(str(e).replace(str(stage), str(folder)) if stage else str(e)) from None
    return Written([folder / name for name in names], written.notes)


def _write(models: dict, stage: Path, external_data: bool | None, tokenizer: list[Path]) -> Written:
    files = [path for name, model in models.items()
             for path in model.model.save(stage / name, external_data=external_data)]
    compiled = models.get(PART_FILES["decoder"]) or models[MODEL]
    notes = []
    generation = generation_json(compiled)
    if generation is not None:
        files.append(_write_json(stage / GENERATION, generation))
        reason = why_not(compiled, generation["state"])
        if reason:
            notes.append(f"no {GENAI}: onnxruntime-genai cannot run this model ({reason})")
        else:
            files.append(_write_json(stage / GENAI, genai_config(compiled, generation["state"], MODEL)))
    for source in tokenizer:
        shutil.copyfile(source, stage / source.name)
        files.append(stage / source.name)
    return Written(files, notes)


def _write_json(path: Path, content: dict) -> Path:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def generation_json(compiled) -> dict | None:
    """What the runtime's generate loop reads, for a model with an LM head over a decoder, else None."""
    spec, graph = compiled.spec, compiled.model.proto.graph
    if spec.decoder is None or spec.head.kind != "lm":
        return None
    metadata = compiled.model.metadata
    outputs = {port.name for port in graph.output}
    state = {}
    for port in graph.input:
        present = present_of(port.name)
        if present in outputs:
            tensor = port.type.tensor_type
            state[port.name] = {"present": present, "dtype": np.dtype(helper.tensor_dtype_to_np_dtype(
                tensor.elem_type)).name, "shape": [dim.dim_param or dim.dim_value for dim in tensor.shape.dim]}
    ids = spec.generation.settings() if spec.generation else {}
    return {"eos_token_id": None, "bos_token_id": None, "pad_token_id": None, **ids,
            "max_length": spec.model.max_length, "cache": metadata["tfcompiler.cache"], "state": state}


def present_of(past: str) -> str | None:
    """The output that gives the next call's ``past`` input: past_key_values.N.key -> present.N.key,
    past_X -> present_X (layer states, segment memories); None for an input that is not carried."""
    if past.startswith("past_key_values."):
        return "present." + past[len("past_key_values."):]
    return "present_" + past[len("past_"):] if past.startswith("past_") else None


def tokenizer_files(spec) -> list[Path]:
    """The tokenizer files in the spec's `tokenizer` folder (relative to the spec's own), sorted."""
    if spec.tokenizer is None:
        return []
    folder = Path(spec.source).parent / spec.tokenizer
    found = sorted(folder / name for name in TOKENIZER_FILES if (folder / name).is_file())
    if not found:
        where = "does not exist" if not folder.is_dir() else f"holds none of {', '.join(TOKENIZER_FILES)}"
        raise TfcError(f"{spec.source}: tokenizer: the folder {folder} {where}")
    return found
