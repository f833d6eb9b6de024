"""Reading safetensors files into NumPy arrays, with half-precision tensors widened to float32.

Checkpoints are commonly stored in float16 or bfloat16, and both widen to float32 exactly. NumPy has no
bfloat16, so safetensors' NumPy reader refuses such tensors: they are read here from the file's own
layout (an 8-byte header length, a JSON header of dtypes, shapes and byte offsets, then the data).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np


class NarrowFloats(ValueError):
    """Tensors of 8-bit or narrower floats, for which NumPy has no type: (name, dtype) pairs."""

    def __init__(self, tensors: list[tuple[str, str]]):
        super().__init__(", ".join(f"{name}: {dtype}" for name, dtype in tensors))
        self.tensors = tensors


def read_tensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file, in the file's order; float16 and bfloat16 become float32.
    Raises safetensors' SafetensorError or OSError for a file it cannot read, NarrowFloats for float8 and
    narrower tensors (safetensors' NumPy reader fails on them with an AttributeError)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as file:
        dtypes = {name: file.get_slice(name).get_dtype() for name in file.keys()}
        narrow = [(name, dtype) for name, dtype in dtypes.items() if dtype.startswith(("F8", "F6", "F4"))]
        if narrow:
            raise NarrowFloats(narrow)
        tensors = {name: file.get_tensor(name) for name, dtype in dtypes.items() if dtype != "BF16"}
    tensors.update(read_bfloat16(path, [name for name, dtype in dtypes.items() if dtype == "BF16"]))
    return {name: widened(tensors[name]) for name in dtypes}


def widened(array: np.ndarray) -> np.ndarray:
    return array.astype(np.float32) if array.dtype == np.float16 else array


def read_bfloat16(path: str | Path, names: list[str]) -> dict[str, np.ndarray]:
    """The named bfloat16 tensors as float32: a bfloat16 is the top half of a float32's bits."""
    if not names:
        return {}
    with open(path, "rb") as file:
        header_length, = struct.unpack("<Q", file.read(8))
        header = json.loads(file.read(header_length))
        tensors = {}
        for name in names:
            start, end = header[name]["data_offsets"]
            file.seek(8 + header_length + start)
            halves = np.frombuffer(file.read(end - start), dtype="<u2")
            tensors[name] = (halves.astype(np.uint32) << 16).view(np.float32).reshape(header[name]["shape"])
    return tensors
