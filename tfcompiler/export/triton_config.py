"""A compiled model's Triton model configuration (config.pbtxt, the `inference.ModelConfig` protobuf in text
form), from its ONNX interface (onnx_ports.py):

    platform "onnxruntime_onnx", backend "onnxruntime"
    max_batch_size B        Triton then batches along every input's and output's first axis, which the
                            graph must leave dynamic, and `dims` leave it out (B = 0: no batching, every
                            axis in `dims`); -1 for each dynamic axis
    input / output          the graph's inputs (but optional ones: an input with a default, `logits_to_keep`,
                            keeps its default, as the onnxruntime backend takes no optional input in a
                            batching model) and outputs, with their TYPE_* data types
    dynamic_batching        a model that carries nothing between calls: batches of up to B rows, waiting at
                            most the queue delay for them
    sequence_batching       a model whose carried values Triton keeps (triton_state.py): the `oldest`
                            strategy batches requests of different sequences (of equal shapes, as Triton
                            batches only those), each `state` pairs a past input with its present output and
                            starts at zeros. The states are neither inputs nor outputs: Triton feeds them.
                            No control input (START, READY): the graphs take none, and zeros start a sequence
    instance_group          N instances, KIND_CPU or KIND_GPU
    parameters              the model's metadata (spec name and hash, target, ...) and tfcompiler.triton.*:
                            the carried values, the first request's past length, the encoder-decoder chain

The text is the same for the same model and settings: fields in the protobuf's order, entries in the graph's.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from onnx import TensorProto

from ..errors import TfcError
from .onnx_ports import Interface, Port
from .triton_state import is_kv_cache, why_not_implicit

TRITON_TYPES = {TensorProto.FLOAT: "TYPE_FP32", TensorProto.FLOAT16: "TYPE_FP16", TensorProto.BFLOAT16: "TYPE_BF16",
                TensorProto.DOUBLE: "TYPE_FP64", TensorProto.INT8: "TYPE_INT8", TensorProto.INT16: "TYPE_INT16",
                TensorProto.INT32: "TYPE_INT32", TensorProto.INT64: "TYPE_INT64", TensorProto.UINT8: "TYPE_UINT8",
                TensorProto.UINT16: "TYPE_UINT16", TensorProto.UINT32: "TYPE_UINT32",
                TensorProto.UINT64: "TYPE_UINT64", TensorProto.BOOL: "TYPE_BOOL", TensorProto.STRING: "TYPE_STRING"}
KINDS = {"cpu": "KIND_CPU", "cuda": "KIND_GPU"}
STATE_MODES = ("auto", "implicit", "client")


@dataclass(frozen=True)
class Settings:
    max_batch_size: int = 8
    instances: int = 1
    device: str | None = None  # cpu or cuda (KIND_CPU or KIND_GPU); None: what the model runs on (device_for)
    queue_delay_us: int = 100
    state: str = "auto"  # implicit where Triton can keep every carried value, else client; or either, forced


@dataclass(frozen=True)
class Tensor:
    """An input or output entry: `reshape` () for a per-row scalar in a batching model (Triton's dims [1])."""

    name: str
    data_type: str
    dims: tuple[int, ...]
    reshape: tuple[int, ...] | None = None


@dataclass(frozen=True)
class State:
    input_name: str
    output_name: str
    data_type: str
    dims: tuple[int, ...]

    @property
    def initial_dims(self) -> tuple[int, ...]:
        """What Triton sizes a sequence's first state at: every variable-size axis 1."""
        return tuple(1 if dim == -1 else dim for dim in self.dims)


@dataclass
class ModelConfig:
    name: str
    max_batch_size: int
    inputs: list[Tensor]
    outputs: list[Tensor]
    states: list[State]
    settings: Settings
    parameters: dict[str, str]
    notes: list[str] = field(default_factory=list)  # what the user should know (why the client carries state)

    def text(self) -> str:
        return render(self)


def model_config(face: Interface, name: str, settings: Settings, given: dict[str, str] | None = None,
                 parameters: dict[str, str] | None = None) -> ModelConfig:
    """The configuration of the model ``face`` served as ``name``; ``given``: the inputs an encoder model
    feeds, {input: the encoder's output}; ``parameters``: more tfcompiler.triton.* entries (the chain)."""
    given = given or {}
    carried = face.carried
    reasons = [why for c in carried if (why := why_not_implicit(face, c, given))]
    if settings.state == "implicit" and reasons:
        raise TfcError(f"{name}: --state implicit: Triton cannot keep this model's state: {'; '.join(reasons)}")
    implicit = bool(carried) and settings.state != "client" and not reasons
    more = f" (and {len(reasons) - 1} more inputs alike)" if len(reasons) > 1 else ""
    notes = [f"{name}: the client carries the state from call to call (--state client), as Triton cannot keep it: "
             f"{reasons[0]}{more}"] if carried and settings.state == "auto" and reasons else []
    kept = {port.name for c in carried for port in (c.past, c.present)} if implicit else set()
    inputs = [p for p in face.inputs if p.name not in kept]
    outputs = [p for p in face.outputs if p.name not in kept]
    batching = settings.max_batch_size > 0
    if batching:
        _check_batch_axis(inputs + outputs + [c.past for c in carried if implicit], settings.max_batch_size)
    states = [State(c.past.name, c.present.name, _data_type(c.past), _dims(c.past, batching)[0])
              for c in carried if implicit]
    for c in carried if implicit else ():
        if c.present.elem_type != c.past.elem_type:
            raise TfcError(f"{c.past.name} is {c.past.dtype_name} but {c.present.name}, which feeds it, is "
                           f"{c.present.dtype_name}")
    extra = dict(parameters or {})
    if carried:
        extra["tfcompiler.triton.state"] = json.dumps(
            {c.past.name: {"present": c.present.name, "dtype": c.past.dtype_name, "past_shape": list(c.past.shape),
                           "present_shape": list(c.present.shape), "kept_by": "triton" if implicit else "client"}
             for c in carried}, sort_keys=True)
    if implicit:  # the past a sequence's first attention mask covers: a KV cache's one zero position, or none
        extra["tfcompiler.triton.first_past_length"] = "1" if any(map(is_kv_cache, carried)) else "0"
    settings = replace(settings, device=device_for(face, name, settings.device))
    return ModelConfig(name, settings.max_batch_size, [_tensor(p, batching) for p in inputs],
                       [_tensor(p, batching) for p in outputs], states, settings, {**face.metadata, **extra}, notes)


def device_for(face: Interface, name: str, asked: str | None) -> str:
    """cuda for a model only onnxruntime's CUDA provider runs (compiled for ort-cuda, or computing in bf16),
    else cpu; ``asked``, the user's choice, when the model runs there."""
    target, dtype = face.metadata.get("tfcompiler.target"), face.metadata.get("tfcompiler.dtype")
    cuda_only = "compiled for --target ort-cuda" if target == "ort-cuda" else \
        "computing in bf16, which onnxruntime runs on CUDA only" if dtype == "bf16" else ""
    if asked == "cpu" and cuda_only:
        raise TfcError(f"{name}: --device cpu: the model runs on CUDA only ({cuda_only})")
    return asked or ("cuda" if cuda_only else "cpu")


def _check_batch_axis(ports: list[Port], max_batch_size: int) -> None:
    """Triton batches along axis 0 of every input and output (and state): it must be one dynamic axis."""
    batch = None
    for port in ports:
        axis = port.shape[0] if port.shape else None
        if not isinstance(axis, str) or (batch is not None and axis != batch):
            found = "it has no axes" if not port.shape else f"its first axis is {axis!r}" + (
                f", not {batch!r}" if batch and isinstance(axis, str) else "")
            raise TfcError(f"--max-batch-size {max_batch_size}: Triton batches along the first axis of every input "
                           f"and output, and {port.name} cannot be batched so ({found}); give --max-batch-size 0")
        batch = axis


def _data_type(port: Port) -> str:
    if port.elem_type not in TRITON_TYPES:
        kind = TensorProto.DataType.Name(port.elem_type) if port.elem_type in TensorProto.DataType.values() \
            else "not a tensor"
        raise TfcError(f"{port.name}: Triton has no data type for {kind}")
    return TRITON_TYPES[port.elem_type]


def _dims(port: Port, batching: bool) -> tuple[tuple[int, ...], tuple[int, ...] | None]:
    """Triton's dims (and reshape) for a port: its axes, the batch axis left out when batching."""
    if port.shape is None:
        raise TfcError(f"{port.name}: the graph does not declare its shape, which Triton's configuration needs")
    axes = port.shape[1:] if batching else port.shape
    if any(axis == 0 for axis in axes):
        raise TfcError(f"{port.name}: an axis of fixed size 0 (shape {list(port.shape)}), which Triton does not take")
    dims = tuple(-1 if isinstance(axis, str) else axis for axis in axes)
    if not dims:  # a scalar per row (batching), or a scalar: Triton spells it dims [1]
        return (1,), (() if batching else None)
    return dims, None


def _tensor(port: Port, batching: bool) -> Tensor:
    return Tensor(port.name, _data_type(port), *_dims(port, batching))


def quote(text: str) -> str:
    """A protobuf text-format string literal (UTF-8 as is; quotes, backslashes and controls escaped)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return '"' + "".join(escapes.get(ch, f"\\{ord(ch):03o}" if ord(ch) < 32 or ord(ch) == 127 else ch)
                         for ch in text) + '"'


def _list(values) -> str:
    return f"[ {', '.join(map(str, values))} ]" if values else "[ ]"


def _block(key: str, entries: list[list[str]], indent: str = "") -> list[str]:
    """A repeated message field as Triton's examples write it: key [ { ... }, { ... } ]."""
    lines = [f"{indent}{key} ["]
    for i, entry in enumerate(entries):
        lines += [f"{indent}  {{", *(f"{indent}    {line}" for line in entry),
                  f"{indent}  }}" + ("," if i < len(entries) - 1 else "")]
    return lines + [f"{indent}]"]


def _tensor_lines(tensor: Tensor) -> list[str]:
    lines = [f"name: {quote(tensor.name)}", f"data_type: {tensor.data_type}", f"dims: {_list(tensor.dims)}"]
    return lines + ([f"reshape {{ shape: {_list(tensor.reshape)} }}"] if tensor.reshape is not None else [])


def _state_lines(state: State) -> list[str]:
    return [f"input_name: {quote(state.input_name)}", f"output_name: {quote(state.output_name)}",
            f"data_type: {state.data_type}", f"dims: {_list(state.dims)}",
            "initial_state [", "  {", f"    data_type: {state.data_type}", f"    dims: {_list(state.initial_dims)}",
            "    zero_data: true", f"    name: {quote('zeros')}", "  }", "]"]


def render(config: ModelConfig) -> str:
    settings, batch = config.settings, config.max_batch_size
    lines = [f"name: {quote(config.name)}", 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"max_batch_size: {batch}"]
    lines += _block("input", [_tensor_lines(t) for t in config.inputs])
    lines += _block("output", [_tensor_lines(t) for t in config.outputs])
    batching = ([f"preferred_batch_size: {_list([batch])}"] if batch else []) + \
        [f"max_queue_delay_microseconds: {settings.queue_delay_us}"]
    if config.states:
        lines += ["sequence_batching {", "  oldest {", f"    max_candidate_sequences: {max(batch, 1)}",
                  *(f"    {line}" for line in batching), "  }",
                  *_block("state", [_state_lines(s) for s in config.states], "  "), "}"]
    elif batch:
        lines += ["dynamic_batching {", *(f"  {line}" for line in batching), "}"]
    lines += _block("instance_group", [[f"count: {settings.instances}", f"kind: {KINDS[settings.device]}"]])
    for key, value in config.parameters.items():
        lines.append(f"parameters {{ key: {quote(key)} value {{ string_value: {quote(value)} }} }}")
    return "\n".join(lines) + "\n"
