"""A compiled model on onnxruntime: provider choice with fallback, the model's metadata (version,
spec hash, I/O roles) and named inputs in, named outputs out. Overridable initializers (a decoder's
`logits_to_keep`) are optional inputs: fed when given, their stored default otherwise."""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail as _Fail
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument as _InvalidArgument

from .input_checks import TABLE_ROLES, TOKEN_ROLES, Limits, as_array, check_lengths, check_shapes, check_values

_PROVIDERS = {"cpu": ["CPUExecutionProvider"],
              "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"]}
# input roles whose values a call returns for the next call (as `present...`): they start empty or at zero
CARRIED = ("past_key", "past_value", "memory", "recurrent_state", "state")
_NUMPY_TYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(float)": np.float32,
                "tensor(float16)": np.float16, "tensor(bool)": np.bool_, "tensor(double)": np.float64}
# Past the cores, intra-op threads only wait for each other; and a session starts every one at once (512 take
# 14 s on two cores, a hundred thousand crash the process), so a Model takes a few per core at most
THREADS_PER_CORE = 4


def most_threads() -> int:
    """The most intra-op threads a Model takes on this machine."""
    return THREADS_PER_CORE * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Port:
    name: str
    dtype: type
    shape: tuple  # ints, or axis names for dynamic axes
    role: str


def quiet_session(path: str, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    """An onnxruntime session, without the warning onnxruntime prints for an input that has a default
    value (a decoder's `logits_to_keep`): that is how ONNX spells an optional input."""
    ort.set_default_logger_severity(3)
    try:
        return ort.InferenceSession(path, options, providers=providers)
    finally:
        ort.set_default_logger_severity(2)


class Model:
    """``Model("bert.onnx", device="cuda")``: falls back to CPU, with a warning, when CUDA is absent."""

    def __init__(self, path: str, device: str = "cpu", intra_op_threads: int | None = None,
                 session_options: ort.SessionOptions | None = None):
        if device not in _PROVIDERS:
            raise ValueError(f"device must be one of {sorted(_PROVIDERS)}, got {device!r}")
        available = ort.get_available_providers()
        providers = [p for p in _PROVIDERS[device] if p in available]
        if device == "cuda" and "CUDAExecutionProvider" not in providers:
            warnings.warn("CUDAExecutionProvider is not available; running on CPU", RuntimeWarning,
                          stacklevel=2)
        options = session_options or ort.SessionOptions()
        if intra_op_threads is not None:  # 0: onnxruntime's default, as it has it
            if not isinstance(intra_op_threads, (int, np.integer)) or isinstance(intra_op_threads, bool) \
                    or not 0 <= intra_op_threads <= most_threads():
                raise ValueError(f"intra_op_threads: expected an integer in 1..{most_threads()} "
                                 f"({THREADS_PER_CORE} per core here), got {intra_op_threads!r}")
            options.intra_op_num_threads = int(intra_op_threads)
        self.session = quiet_session(str(path), options, providers)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.metadata = dict(meta)
        roles = json.loads(meta.get("tfcompiler.io_roles", "{}"))
        self.inputs = [Port(i.name, _NUMPY_TYPES.get(i.type, np.float32), tuple(i.shape),
                            roles.get(i.name, "")) for i in self.session.get_inputs()]
        self.overridable = [Port(i.name, _NUMPY_TYPES.get(i.type, np.float32), tuple(i.shape), "overridable")
                            for i in self.session.get_overridable_initializers()]
        self.limits = Limits.from_metadata(self.metadata)
        self._quiet = ort.RunOptions()
        self._quiet.log_severity_level = 4  # an input it refuses is raised by `run`; its own log line is noise
        self.outputs = [Port(o.name, _NUMPY_TYPES.get(o.type, np.float32), tuple(o.shape), "output")
                        for o in self.session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def run(self, feeds: dict[str, np.ndarray] | None = None, **named) -> dict[str, np.ndarray]:
        """Named inputs in, named outputs out. Inputs that do not fit the model (names, types, shapes, ids
        outside the vocabulary, masks other than 0/1, lengths over max_length) raise ValueError naming
        the input and the position (tfc_runtime.input_checks)."""
        return self.call(self.checked({**(feeds or {}), **named}))

    def checked(self, feeds: dict) -> dict[str, np.ndarray]:
        """The inputs as the model's arrays, or a ValueError naming what does not fit (see `run`)."""
        missing = [p.name for p in self.inputs if p.name not in feeds]
        unknown = sorted(set(feeds) - {p.name for p in self.inputs + self.overridable})
        if missing or unknown:
            optional = f" (optional: {[p.name for p in self.overridable]})" if self.overridable else ""
            raise ValueError(f"inputs do not fit the model: missing {missing}, unknown {unknown}; "
                             f"it takes {[p.name for p in self.inputs]}{optional}")
        arrays = {p.name: as_array(p, feeds[p.name]) for p in self.inputs + self.overridable
                  if p.name in feeds}
        check_shapes(self.inputs, arrays)
        check_lengths(self.inputs, arrays, self.limits)
        check_values(self.inputs, arrays, self.limits)
        return arrays

    def call(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`run` without the checks, for arrays `checked` gave (a server checks each request alone, then runs
        several together); onnxruntime's own refusals still raise ValueError or MemoryError."""
        try:
            values = self.session.run(None, arrays, self._quiet)
        except _InvalidArgument as error:  # what the metadata does not bound (a segment id past its table)
            raise ValueError("onnxruntime refused these inputs: "
                             + str(error).split("INVALID_ARGUMENT : ")[-1].split("\n")[0]) from None
        except _Fail as error:  # its arena's way of saying the activations for these inputs do not fit
            if "Failed to allocate memory" not in str(error):
                raise
            raise MemoryError("onnxruntime could not allocate memory for these inputs: "
                              + str(error).split("Failed to allocate memory")[-1].strip()) from None
        return {p.name: v for p, v in zip(self.outputs, values)}


def random_inputs(model: Model, batch: int = 1, sequence: int = 8, seed: int = 0,
                  sizes: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Inputs of the right names, types and shapes: ids in [0, vocabulary), masks all ones, the first token
    global where the model takes a global attention mask.
    Dynamic axes take ``sizes[axis]``, else ``batch`` for batch axes and ``sequence`` for the rest;
    an axis the model restricts to offset + k·step (``tfcompiler.length_rules``) is rounded up to
    the next length it accepts (down, where up would pass max_length). What a call carries to the next
    (KV caches, memories, states) starts empty or at zero, so positions count from 0 and a mask over
    past + new tokens covers the new ones. A count below 1 or a negative seed raises ValueError."""
    for name, value, least in (("batch", batch, 1), ("sequence", sequence, 1), ("seed", seed, 0),
                               *((f"sizes[{axis!r}]", size, 0) for axis, size in (sizes or {}).items())):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
    rng = np.random.default_rng(seed)
    sizes = dict(sizes or {})
    longest = model.limits.max_length
    for axis, (offset, step) in (model.limits.length_rules or {}).items():
        k = max(1, -(-(sizes.get(axis, sequence) - offset) // step))
        if longest is not None and k > 1 and offset + step * k > longest:
            k -= 1
        sizes[axis] = offset + step * k
    vocab = model.limits.vocab_size or 2

    def shape_of(port: Port) -> list[int]:
        return [d if isinstance(d, int) else sizes.get(d, batch if "batch" in str(d) else sequence)
                for d in port.shape]
    # a length past max_length is refused before anything is allocated for it (shapes alone: zero strides)
    check_lengths(model.inputs, {p.name: np.broadcast_to(np.zeros((), p.dtype), shape_of(p)) for p in model.inputs
                                 if p.role in TOKEN_ROLES}, model.limits)
    tokens = next((p for p in model.inputs if p.role in ("token_ids", "vectors", "intensities")), None)  # (B, S[, F])
    cached = any(p.role in ("past_key", "past_value") for p in model.inputs)
    feeds = {}
    for port in model.inputs:
        shape = shape_of(port)
        if port.role in CARRIED:  # recurrence starts empty, from zero states
            shape = [0 if str(axis).startswith("past_") else size for axis, size in zip(port.shape, shape)]
            feeds[port.name] = np.zeros(shape, port.dtype)
        elif port.role == "padding_mask":
            if cached and tokens is not None:  # past + new tokens, and the past is empty
                shape[-1] = shape_of(tokens)[1]
            feeds[port.name] = np.ones(shape, port.dtype)
        elif port.role == "position_ids":
            feeds[port.name] = np.broadcast_to(np.arange(shape[-1], dtype=port.dtype), shape).copy()
        elif port.role == "global_mask":  # Longformer's convention: the first token ([CLS]) global
            feeds[port.name] = np.zeros(shape, port.dtype)
            feeds[port.name][:, :1] = 1
        elif port.role == "token_type_ids":
            feeds[port.name] = np.zeros(shape, port.dtype)
        elif port.role == "adjacency":  # every node attends every node
            feeds[port.name] = np.ones(shape, port.dtype)
        elif port.role in TABLE_ROLES and port.name in (model.limits.ranges or {}):  # one size, or one a column
            feeds[port.name] = rng.integers(0, model.limits.ranges[port.name], size=shape).astype(port.dtype)
        elif np.issubdtype(port.dtype, np.integer):
            feeds[port.name] = rng.integers(0, vocab, size=shape).astype(port.dtype)
        else:
            feeds[port.name] = rng.standard_normal(shape).astype(port.dtype)
    return feeds
