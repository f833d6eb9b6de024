"""A lowered model and its byte-level writer.

On a 110M-parameter model every copy of the weights costs about a second here, and
``helper.make_graph`` / ``make_model`` / ``SerializeToString`` make three. So the model is kept as a
proto *without* weight payloads plus the weights, and streamed: the protobuf framing is computed
by hand, each array's buffer goes to the file as is, and seeded weights are drawn on the other cores
while earlier ones are being written. The bytes are a valid ModelProto (one ``graph`` field holding nodes, I/O
and initializers), identical for identical inputs. Over 2 GB, or on request, payloads go to one
external data file with aligned offsets instead.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnx import helper

from ..atomic import atomic_path

PROTOBUF_LIMIT = 2 ** 31 - 1
_GRAPH_FIELD, _INITIALIZER_FIELD, _RAW_DATA_FIELD = 7, 5, 9
_EXTERNAL_ALIGNMENT = 4096
_EXTERNAL_THRESHOLD = 1024


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_header(number: int, length: int) -> bytes:
    """Tag and length of a length-delimited field."""
    return _varint(number << 3 | 2) + _varint(length)


def _little_endian(array) -> np.ndarray:
    """C-contiguous little-endian data (np.ascontiguousarray would turn a 0-d array into 1-d)."""
    array = np.asarray(array)
    return np.require(array.astype(array.dtype.newbyteorder("<"), copy=False), requirements="C")


def _bytes_of(array: np.ndarray) -> memoryview:
    """The buffer of a C-contiguous array without a copy (as bytes: bfloat16 has no buffer format)."""
    return memoryview(array.reshape(-1).view(np.uint8))


def _tensor_header(name: str, array, **external) -> onnx.TensorProto:
    """A TensorProto without its payload (``array`` is an array or a weight recipe)."""
    data_type = getattr(array, "tensor_type", None) or helper.np_dtype_to_tensor_dtype(array.dtype)
    tensor = onnx.TensorProto(name=name, data_type=data_type)
    tensor.dims.extend(getattr(array, "tensor_dims", array.shape))  # a Retyped array: its own type and dims
    if external:
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key, value in external.items():
            tensor.external_data.add(key=key, value=str(value))
    return tensor


@dataclass
class LoweredModel:
    """``proto`` holds everything but the weight payloads, which are ``initializers``."""

    proto: onnx.ModelProto
    initializers: list[tuple[str, object]]  # arrays, or weight recipes with shape/dtype/fill
    missed: dict = field(default_factory=dict)  # (fused form, why not) -> ops lowered without it
    masks: frozenset = frozenset()  # the initializers that are masks, of the model's precision (lower/mask_values.py)

    @property
    def metadata(self) -> dict[str, str]:
        """The model's metadata_props as a dict (tfcompiler.cache, tfcompiler.target, ...)."""
        return {prop.key: prop.value for prop in self.proto.metadata_props}

    @property
    def opset(self) -> int:
        """The standard (default-domain) opset the model is stamped with."""
        return next(entry.version for entry in self.proto.opset_import if entry.domain in ("", "ai.onnx"))

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for _, a in self.initializers)

    def to_proto(self) -> onnx.ModelProto:
        """The complete in-memory ModelProto (copies the weights; fine for small models)."""
        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        for name, array in self.initializers:
            tensor = _tensor_header(name, array)
            tensor.raw_data = _little_endian(array).tobytes()
            model.graph.initializer.append(tensor)
        return model

    def serialize(self) -> bytes:
        return b"".join(bytes(chunk) for chunk in self._chunks())

    def _chunks(self) -> Iterator[bytes | memoryview]:
        """The file's bytes in order: framing computed by hand, then each weight's buffer as is.
        Seeded weights are drawn on the other cores while earlier ones are written."""
        head = onnx.ModelProto()
        head.CopyFrom(self.proto)
        graph_bytes = head.graph.SerializeToString()
        head.ClearField("graph")
        headers = []
        for name, weight in self.initializers:
            header = _tensor_header(name, weight).SerializeToString()
            raw = _field_header(_RAW_DATA_FIELD, weight.nbytes)
            tensor_length = len(header) + len(raw) + weight.nbytes
            headers.append(_field_header(_INITIALIZER_FIELD, tensor_length) + header + raw)
        graph_length = len(graph_bytes) + sum(map(len, headers)) + self.weight_bytes
        yield head.SerializeToString() + _field_header(_GRAPH_FIELD, graph_length) + graph_bytes
        with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
            arrays = pool.map(_little_endian, (weight for _, weight in self.initializers))
            for header, array in zip(headers, arrays):
                yield header
                yield _bytes_of(array)

    def save(self, path: str | Path, external_data: bool | None = None) -> list[Path]:
        """Write atomically; returns the files written. ``external_data=None`` decides by size."""
        path = Path(path)
        if external_data is None:
            external_data = self.weight_bytes > PROTOBUF_LIMIT - (64 << 20)
        if not external_data:
            with atomic_path(path) as temp, open(temp, "wb") as f:
                for chunk in self._chunks():
                    f.write(chunk)
            return [path]
        data_path = path.with_name(path.name + ".data")
        model = onnx.ModelProto()
        model.CopyFrom(self.proto)
        with atomic_path(data_path) as data_temp, atomic_path(path) as temp:
            with open(data_temp, "wb") as data:
                for name, array in self.initializers:
                    if array.nbytes < _EXTERNAL_THRESHOLD:  # shape constants must stay inline
                        tensor = _tensor_header(name, array)
                        tensor.raw_data = _little_endian(array).tobytes()
                        model.graph.initializer.append(tensor)
                        continue
                    offset = -data.tell() % _EXTERNAL_ALIGNMENT
                    data.write(b"\0" * offset)
                    start = data.tell()
                    data.write(_bytes_of(_little_endian(array)))
                    model.graph.initializer.append(_tensor_header(
                        name, array, location=data_path.name, offset=start, length=array.nbytes))
                os.fsync(data.fileno())
            temp.write_bytes(model.SerializeToString())
        return [path, data_path]
