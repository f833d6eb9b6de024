"""A compiled model's interface as its ONNX graph declares it, read without its weights: the inputs a caller
feeds (graph inputs that are not initializers: an input with a default value, a decoder's `logits_to_keep`,
is ONNX's optional input and stays out), the outputs, each with its element type and its shape (ints for
fixed axes, names for dynamic ones), the roles tfcompiler recorded for them (metadata `tfcompiler.io_roles`),
and the values a call hands to the next (a `past...` input fed by its `present...` output)."""
from __future__ import annotations

import json
from dataclasses import dataclass

import onnx

from ..model_folder import present_of

DYNAMIC = "?"  # an axis the graph names neither by a number nor by a symbol


@dataclass(frozen=True)
class Port:
    name: str
    elem_type: int  # onnx.TensorProto.DataType
    shape: tuple | None  # int for a fixed axis, str (its symbol, or DYNAMIC) for a dynamic one; None: undeclared
    role: str = ""  # tfcompiler's role (token_ids, padding_mask, past_key, state, memory, ...), "" if unknown

    @property
    def dtype_name(self) -> str:
        return onnx.helper.tensor_dtype_to_np_dtype(self.elem_type).name


@dataclass(frozen=True)
class Carried:
    """A value a call returns for the next call: the input ``past`` is fed by the output ``present``."""

    past: Port
    present: Port


@dataclass(frozen=True)
class Interface:
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    metadata: dict

    @property
    def carried(self) -> tuple[Carried, ...]:
        outputs = {port.name: port for port in self.outputs}
        return tuple(Carried(port, outputs[present_of(port.name)]) for port in self.inputs
                     if present_of(port.name) in outputs)

    def input(self, role: str, name: str) -> Port | None:
        """The input with this role, or (a model without roles) this name."""
        return next((p for p in self.inputs if p.role == role or (not p.role and p.name == name)), None)


def interface(model: onnx.ModelProto) -> Interface:
    metadata = {prop.key: prop.value for prop in model.metadata_props}
    try:
        roles = json.loads(metadata.get("tfcompiler.io_roles", "{}"))
    except json.JSONDecodeError:
        roles = {}
    defaults = {tensor.name for tensor in model.graph.initializer}

    def port(value: onnx.ValueInfoProto) -> Port:
        tensor = value.type.tensor_type
        shape = tuple(dim.dim_value if dim.HasField("dim_value") else dim.dim_param or DYNAMIC
                      for dim in tensor.shape.dim) if tensor.HasField("shape") else None
        return Port(value.name, tensor.elem_type, shape, roles.get(value.name, "") if isinstance(roles, dict) else "")

    return Interface(tuple(port(v) for v in model.graph.input if v.name not in defaults),
                     tuple(port(v) for v in model.graph.output), metadata)
