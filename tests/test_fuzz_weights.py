"""Keeps issue 20 closed for `tfc compile SPEC --weights W`: W is the tiny decoder's own weights
(`tfc init-weights`) written anew with changes: tensors dropped, added or renamed; shapes changed; dtypes
changed (float64, integers, bool, float8, float16, bfloat16); NaN or infinite values; then maybe the file
itself broken (truncated, bytes overwritten, its header length or JSON header corrupted), or replaced by an
empty file, random bytes, a pickle named .bin, an .npz, a folder, or no file at all.

Each must compile (exit 0) or be refused with a clean error (exit 1) that leaves no output file; a change
that makes the weights wrong must be refused; float16 and bfloat16 may either widen to float32 or be
refused. The file is written by hand (tests/fuzzing.py's verdict applies), so that bfloat16, float8 and a
broken header need no library that would refuse to write them.
"""
from __future__ import annotations

import json
import math
import pickle
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_spec
from fuzzing import FUZZ, SCALE, assert_clean, files_in, run_cli

# safetensors dtype -> how a float32 array is stored as it (None: its bytes are made by hand below)
DTYPES = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "BF16": None, "F8_E4M3": None, "I64": np.int64,
          "I32": np.int32, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
HALF = {"F16", "BF16"}  # widened to float32, or refused, as the compiler decides: both are clean
FAILS, MAY_FAIL, FITS = "fails", "may fail", "fits"


def stored(array: np.ndarray, dtype: str) -> bytes:
    """The bytes of ``array`` (float32) stored as ``dtype``, little-endian as safetensors has it."""
    if dtype == "BF16":  # bfloat16 is the top half of a float32
        return (array.astype("<f4").view("<u4") >> 16).astype("<u2").tobytes()
    if dtype == "F8_E4M3":
        return np.zeros(array.size, np.uint8).tobytes()  # zeros: one byte each; no NumPy type to cast with
    with np.errstate(invalid="ignore", over="ignore"):  # NaN to an integer: any integer will do
        return array.astype(np.dtype(DTYPES[dtype]).newbyteorder("<")).tobytes()


def safetensors_bytes(tensors: dict[str, tuple[str, np.ndarray]], header_change=None) -> bytes:
    """A safetensors file: an 8-byte header length, the JSON header (dtype, shape, data offsets), the data."""
    header, data = {"__metadata__": {"format": "np"}}, b""
    for name, (dtype, array) in tensors.items():
        raw = stored(array, dtype)
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if header_change:
        header = header_change(header)
    text = json.dumps(header).encode() if not isinstance(header, bytes) else header
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """The tiny decoder's spec and the weights `tfc init-weights` writes for it."""
    from safetensors.numpy import load_file

    folder = tmp_path_factory.mktemp("weights")
    spec = folder / "spec.yaml"
    spec.write_text(tiny_spec())
    assert run_cli("init-weights", str(spec), "-o", str(folder / "w.safetensors"))[0] == 0
    return spec, load_file(str(folder / "w.safetensors"))


@st.composite
def tensor_changes(draw, names: list[str]):
    """One change of the tensors: (what it does to {name: (dtype, array)}, whether the weights then fit)."""
    name = draw(st.sampled_from(names))
    action = draw(st.sampled_from(["drop", "extra", "rename", "shape", "dtype", "dtype", "value", "value"]))
    if action == "drop":
        return (lambda t: {k: v for k, v in t.items() if k != name}), FAILS
    if action == "extra":
        extra = draw(st.sampled_from([f"{name}.extra", "x", "", "é", "decoder.layers.9.ffn.up.weight", "a" * 500]))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        return (lambda t: {**t, extra: ("F32", np.ones(shape, np.float32))} if extra not in t else t), FAILS
    if action == "rename":
        return (lambda t: {(k + "s" if k == name else k): v for k, v in t.items()}), FAILS
    if action == "shape":
        how = draw(st.sampled_from(["axis", "cut", "flat"]))
        return (lambda t: {**t, name: (t[name][0], _reshaped(t[name][1], how))} if name in t else t), FAILS
    if action == "dtype":
        dtype = draw(st.sampled_from(sorted(DTYPES)))
        fits = FITS if dtype == "F32" else MAY_FAIL if dtype in HALF else FAILS
        return (lambda t: {**t, name: (dtype, t[name][1])} if name in t else t), fits
    value = draw(st.sampled_from([math.nan, math.inf, -math.inf, 3e38, 1e-45, -0.0]))
    where = draw(st.integers(0, 10 ** 6))

    def set_value(t):
        if name not in t:
            return t
        array = t[name][1].copy()
        if not np.isfinite(array.flat[where % array.size]):  # an earlier change's NaN stays: its verdict holds
            return t
        array.flat[where % array.size] = value
        return {**t, name: (t[name][0], array)}
    # 3e38 fits float32 (and bfloat16); stored as float16 it is infinite, which that change's "may fail" covers
    return set_value, FITS if math.isfinite(value) else FAILS


def _reshaped(array: np.ndarray, how: str) -> np.ndarray:
    if how == "axis":
        return array[None]
    if how == "cut" and len(array) > 1:
        return array[:-1]
    return array.reshape(-1, 1) if array.ndim == 1 else array.reshape(-1)


def _per_tensor(change):
    """A header change made to every tensor's entry (the metadata left as it is)."""
    return lambda header: {k: (change(v) if k != "__metadata__" else v) for k, v in header.items()}


HEADER_CHANGES = {
    "unknown dtype": _per_tensor(lambda t: {**t, "dtype": "F31"}),
    "shape text": _per_tensor(lambda t: {**t, "shape": "32"}),
    "negative shape": _per_tensor(lambda t: {**t, "shape": [-1]}),
    "huge shape": _per_tensor(lambda t: {**t, "shape": [2 ** 62, 2 ** 62]}),
    "offsets reversed": _per_tensor(lambda t: {**t, "data_offsets": t["data_offsets"][::-1]}),
    "offsets past the end": _per_tensor(lambda t: {**t, "data_offsets": [0, 2 ** 40]}),
    "metadata not text": lambda h: {**h, "__metadata__": {"format": 1}},
    "a list": lambda h: [1, 2],
    "not JSON": lambda h: b"{not json",
    "not UTF-8": lambda h: b'{"\xff\xfe": 1}',
}


def file_change(draw, data: bytes) -> tuple[bytes, str]:
    """Break the written file: (its new bytes, whether the weights may still fit)."""
    action = draw(st.sampled_from(["truncate", "overwrite", "header length"]))
    if action == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))], FAILS
    if action == "overwrite":
        at, junk = draw(st.integers(0, len(data) - 1)), draw(st.binary(min_size=1, max_size=16))
        return data[:at] + junk + data[at + len(junk):], MAY_FAIL
    length = draw(st.sampled_from([0, 1, 2 ** 63, 2 ** 64 - 1, 2 ** 40, len(data)]))
    return struct.pack("<Q", length) + data[8:], FAILS


def whole_files(folder: Path) -> dict[str, Path]:
    """What --weights may name instead of a safetensors file."""
    (folder / "empty.safetensors").write_bytes(b"")
    (folder / "random.safetensors").write_bytes(bytes(range(256)) * 3)
    (folder / "text.safetensors").write_text("weights: here\n")
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps({"embeddings.tokens.weight": [[0.0] * 32] * 50}))
    np.savez(folder / "weights.npz", x=np.zeros(3, np.float32))
    (folder / "folder.safetensors").mkdir()
    return {p.name: p for p in folder.iterdir()} | {"missing": folder / "missing.safetensors"}


def compile_with(spec: Path, weights: Path, out_folder: Path) -> tuple[int, str]:
    code, err = run_cli("compile", str(spec), "-o", str(out_folder / "out.onnx"), "-q", "--weights", str(weights))
    assert_clean(code, err)
    assert code in (0, 1), err
    assert (out_folder / "out.onnx").exists() == (code == 0), err
    return code, err


def test_the_unchanged_weights_compile(tiny, tmp_path):
    """Without this the fuzz below could pass with every file refused."""
    spec, weights = tiny
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes({name: ("F32", array) for name, array in weights.items()}))
    assert compile_with(spec, path, tmp_path)[0] == 0


@settings(FUZZ, max_examples=150 * SCALE)
@given(data=st.data())
def test_changed_weights_compile_or_are_refused_cleanly(tiny, data):
    spec, weights = tiny
    changes = data.draw(st.lists(tensor_changes(sorted(weights)), min_size=1, max_size=3))
    tensors = {name: ("F32", array) for name, array in weights.items()}
    for change, _ in changes:
        tensors = change(tensors)
    header = data.draw(st.sampled_from([None] * 8 + sorted(HEADER_CHANGES)))
    written = safetensors_bytes(tensors, HEADER_CHANGES.get(header))
    verdicts = [fits for _, fits in changes] + [FITS if header is None else FAILS]
    if data.draw(st.integers(0, 3)) == 0:
        written, fits = file_change(data.draw, written)
        verdicts.append(fits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.safetensors"
        path.write_bytes(written)
        code, err = compile_with(spec, path, Path(tmp))
    if FAILS in verdicts:
        assert code == 1, f"accepted weights that do not fit ({verdicts})"
    elif MAY_FAIL not in verdicts:
        assert code == 0, err


@pytest.mark.parametrize("name", ["empty.safetensors", "random.safetensors", "text.safetensors",
                                  "pytorch_model.bin", "weights.npz", "folder.safetensors", "missing"])
def test_what_is_not_a_safetensors_file_is_refused_cleanly(tiny, tmp_path, name):
    spec, _ = tiny
    files, out = tmp_path / "files", tmp_path / "out"
    files.mkdir()
    out.mkdir()
    path = whole_files(files)[name]
    code, err = compile_with(spec, path, out)
    assert code == 1 and f"error: {path}: " in err, err
    assert files_in(out) == []


def test_float8_weights_are_refused_cleanly(tiny, tmp_path):
    """Found by this fuzz: NumPy has no float8 type, and safetensors' NumPy reader failed on such a tensor with
    an AttributeError (an internal error)."""
    spec, weights = tiny
    tensors = {name: ("F32", array) for name, array in weights.items()}
    tensors["decoder.final_norm.weight"] = ("F8_E4M3", weights["decoder.final_norm.weight"])
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(tensors))
    code, err = compile_with(spec, path, tmp_path)
    assert code == 1 and "wrong dtype (1):\n    decoder.final_norm.weight: expected float32, got F8_E4M3" in err, err
