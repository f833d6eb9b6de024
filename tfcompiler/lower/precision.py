"""Lower precision: the lowered fp32 model retyped to fp16 or bf16 (`tfc compile --dtype`).

Every float tensor of the lowered graph falls in one of two classes, found by following the data:

- an **activation** depends on a weight or a float input: it is computed in the low precision;
- **index arithmetic** depends only on integers and constants (positions, ALiBi distances, masks
  made from `attention_mask`, rows gathered from tables the compiler computed: sinusoids, T5's
  buckets): it stays fp32 and is cast down where it meets an activation. Positions past 2048 are
  not integers in fp16, so they must not be computed in 16 bits.

A node computes in the low precision when any of its float inputs is an activation, else in fp32;
its other float inputs are cast to match (one Cast per tensor and type, placed where the tensor is
made, so a `Loop` body does not cast an outer tensor on every iteration); float constants get a
low-precision copy where an activation uses them. Ops on the block list (`blocked`: op type ->
why it stays fp32, the pass's data: lower/convert_precision.py) and ops the standard's schema (at
the model's opset) has no low-precision form for compute in fp32 between Casts. A region that must
compute in fp32 is declared by an explicit Cast of a float tensor to fp32 in the lowered graph, made
by `Emitter.fp32` (the IR's `keep_fp32` lowers to it): it starts fp32 work that its users continue.
Which tensors are float is read from their types (`types`: lower/value_types.py), not from op types.

The masks are typed constants, never found by value: the lowering emitted them already in the
model's precision (lower/mask_values.py: shares of the low type's most negative number, since fp32's
is -inf there and a row of -inf scores is NaN after softmax) and recorded their names
(`LoweredModel.masks`), and they are converted as they are; a recorded mask the low type does not
hold exactly was lowered for another precision, an internal error. Any other constant or weight
beyond the low type's range is an error, never a silent infinity.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Mapping

import ml_dtypes
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..errors import TfcError
from .serialize import LoweredModel
from .value_types import value_types

TENSOR_TYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
NUMPY_TYPES = {"fp16": np.dtype(np.float16), "bf16": np.dtype(ml_dtypes.bfloat16)}
LOW, WIDE = "low", "wide"  # the two classes of a float tensor
_CONST = "const"  # a float initializer that is not a weight: its class is its user's

@cache
def standard_takes(op_type: str, opset: int, type_str: str, positions: tuple[int, ...]) -> bool:
    """Whether the standard op (its schema at `opset`) takes `type_str` (e.g. "tensor(bfloat16)") at
    the input positions `positions`."""
    schema = onnx.defs.get_schema(op_type, opset, "")
    constraints = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for i in positions:
        formal = schema.inputs[min(i, len(schema.inputs) - 1)].type_str  # the last may be variadic
        if type_str not in constraints.get(formal, {formal}):
            return False
    return True


@dataclass
class _Scope:
    """One graph being rewritten: its new node list, the names it defines, the Casts made in it."""

    nodes: list
    defined: set
    parent: "_Scope | None" = None
    casts: dict = field(default_factory=dict)


class _Retyper:
    def __init__(self, model: LoweredModel, precision: str, weights: set[str], blocked: Mapping[str, str],
                 low_io: bool, types: Mapping[str, int]):
        self.low_type, self.numpy_type = TENSOR_TYPES[precision], NUMPY_TYPES[precision]
        self.type_str = f"tensor({self.numpy_type.name})"  # as onnx's schemas write it: tensor(bfloat16)
        self.opset = next(o.version for o in model.proto.opset_import if o.domain in ("", "ai.onnx"))
        self.precision, self.blocked, self.low_io, self.types = precision, blocked, low_io, types
        self.kinds: dict[str, str] = {}
        self.missed = Counter(model.missed)
        self.kept = Counter()  # (op type, why) -> nodes kept fp32
        self.computed = Counter()  # LOW / WIDE -> nodes with a float input that compute in that class
        self.inserted = Counter()  # LOW / WIDE -> Casts inserted to that class
        self.fp32_casts = 0  # explicit Casts of a float tensor to fp32 (Emitter.fp32) met
        self.constants: dict[str, np.ndarray] = {}
        self.low_copies: dict[str, str] = {}
        self.wide_uses: set[str] = set()
        self.initializers = []
        self.masks = model.masks
        for name, array in model.initializers:
            if np.dtype(array.dtype) != np.float32:
                self.initializers.append((name, array))
            elif name in weights:  # arrays now (a weight out of range is an error before anything is written)
                self.kinds[name] = LOW
                self.initializers.append((name, to_low(array, self.numpy_type, name) if isinstance(array, np.ndarray)
                                          else Converted(array, self.numpy_type, name)))
            else:
                self.kinds[name] = _CONST
                self.constants[name] = self.checked_mask(name, array) if name in self.masks else np.asarray(array)
                self.initializers.append((name, self.constants[name]))

    def checked_mask(self, name: str, array: np.ndarray) -> np.ndarray:
        """A recorded mask, which the lowering made for this precision: exact in the low type."""
        array = np.asarray(array)
        with np.errstate(over="ignore"):  # an fp32 mask is -inf in the low type: the case reported below
            exact = np.array_equal(array.astype(self.numpy_type).astype(np.float32), array)
        if not exact:
            raise ValueError(f"mask {name} holds {array.min():g}, not a {self.precision} mask: the model was "
                             f"lowered for another precision (to_onnx(..., precision={self.precision!r}))")
        return array

    def type_of(self, kind: str) -> int:
        return self.low_type if kind == LOW else TensorProto.FLOAT

    # --- values of one class -------------------------------------------------------------------
    def as_class(self, name: str, kind: str, scope: _Scope) -> str:
        """`name` (a float tensor) as a tensor of class `kind`: itself, a constant's copy, or a Cast."""
        have = self.kinds[name]
        if have == kind:
            return name
        if have == _CONST:
            if kind == WIDE:
                self.wide_uses.add(name)
                return name
            if name not in self.low_copies:
                self.low_copies[name] = f"{name}/{self.precision}"
            return self.low_copies[name]
        home = scope
        while home.parent is not None and name not in home.defined:
            home = home.parent
        if (name, kind) not in home.casts:
            cast = f"{name}/{'to_' + self.precision if kind == LOW else 'to_fp32'}"
            home.nodes.append(helper.make_node("Cast", [name], [cast], name=cast, to=self.type_of(kind)))
            home.defined.add(cast)
            home.casts[name, kind] = cast
            self.inserted[kind] += 1
            self.kinds[cast] = kind
        return home.casts[name, kind]

    # --- graphs ----------------------------------------------------------------------------------
    def graph(self, graph: onnx.GraphProto, scope: _Scope) -> None:
        """Retype `graph`'s nodes into `scope.nodes`; the caller writes them back (`rewrite`) once its
        outputs have their Casts too."""
        for node in graph.node:
            if node.op_type == "Loop":
                self.loop(node, scope)
            elif node.op_type == "If":
                self.branches(node, scope)
            elif node.op_type == "Cast":
                self.cast(node, scope)
            else:
                self.compute(node, scope)
            scope.nodes.append(node)
            scope.defined.update(node.output)

    @staticmethod
    def rewrite(graph: onnx.GraphProto, scope: _Scope) -> None:
        del graph.node[:]
        graph.node.extend(scope.nodes)

    def compute(self, node: onnx.NodeProto, scope: _Scope) -> None:
        floats = [bool(name) and name in self.kinds for name in node.input]
        low = any(f and self.kinds[name] == LOW for f, name in zip(floats, node.input)) and self.takes_low(node, floats)
        kind = LOW if low else WIDE
        for i, name in enumerate(node.input):
            if floats[i]:
                node.input[i] = self.as_class(name, kind, scope)
        if any(floats):
            self.computed[kind] += 1
        for output in node.output:
            if output and self.types.get(output) == TensorProto.FLOAT:
                self.kinds[output] = kind
        if node.op_type == "ConstantOfShape" and low:
            for attribute in node.attribute:
                if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                    attribute.t.CopyFrom(self.low_tensor(numpy_helper.to_array(attribute.t), node.name))

    def takes_low(self, node: onnx.NodeProto, floats: list[bool]) -> bool:
        """Whether the node can compute in the low precision; where not, the miss is recorded."""
        why = self.blocked.get(node.op_type)
        positions = tuple(i for i, f in enumerate(floats) if f)
        if why is None and not node.domain and not standard_takes(node.op_type, self.opset, self.type_str, positions):
            why = f"the standard's {node.op_type} (opset {self.opset}) takes no {self.type_str}: computed in fp32"
        if why is None:
            return True
        self.missed[f"{self.precision} {node.op_type}", why] += 1
        self.kept[node.op_type, why] += 1
        return False

    def cast(self, node: onnx.NodeProto, scope: _Scope) -> None:
        """A Cast to fp32 of a float tensor stays an explicit fp32 request; of an integer or a bool
        it makes index arithmetic (fp32), cast down later only where an activation needs it."""
        if self.kinds.get(node.input[0]) == _CONST:
            self.wide_uses.add(node.input[0])
        to = next(a for a in node.attribute if a.name == "to")
        if to.i == TensorProto.FLOAT:
            self.kinds[node.output[0]] = WIDE
            self.fp32_casts += node.input[0] in self.kinds

    def loop(self, node: onnx.NodeProto, scope: _Scope) -> None:
        body = next(a.g for a in node.attribute if a.name == "body")
        carried = len(node.input) - 2
        for i in range(2, len(node.input)):  # loop-carried floats are activations, in and out
            if node.input[i] in self.kinds:
                node.input[i] = self.as_class(node.input[i], LOW, scope)
                self.kinds[body.input[i].name] = LOW
                body.input[i].type.tensor_type.elem_type = self.low_type
        inner = _Scope([], {i.name for i in body.input}, scope)
        self.graph(body, inner)
        outputs = list(body.output[1:])
        for i, value in enumerate(outputs):
            if value.name not in self.kinds:
                continue
            if i < carried:
                value.name = self.as_class(value.name, LOW, inner)
            self.kinds[node.output[i]] = self.kinds[value.name]
            value.type.tensor_type.elem_type = self.type_of(self.kinds[value.name])
        self.rewrite(body, inner)

    def branches(self, node: onnx.NodeProto, scope: _Scope) -> None:
        graphs = [a.g for a in node.attribute if a.name in ("then_branch", "else_branch")]
        scopes = [_Scope([], set(), scope) for _ in graphs]
        for branch, inner in zip(graphs, scopes):
            self.graph(branch, inner)
        for i, output in enumerate(node.output):
            names = [branch.output[i].name for branch in graphs]
            if not all(name in self.kinds for name in names):
                continue
            kind = LOW if any(self.kinds[name] == LOW for name in names) else WIDE
            for branch, inner in zip(graphs, scopes):
                value = branch.output[i]
                value.name = self.as_class(value.name, kind, inner)
                value.type.tensor_type.elem_type = self.type_of(kind)
            self.kinds[output] = kind
        for branch, inner in zip(graphs, scopes):
            self.rewrite(branch, inner)

    def low_tensor(self, array: np.ndarray, name: str) -> onnx.TensorProto:
        return numpy_helper.from_array(to_low(array, self.numpy_type, name), name)

    # --- the model -------------------------------------------------------------------------------
    def model(self, model: LoweredModel) -> LoweredModel:
        proto = onnx.ModelProto()
        proto.CopyFrom(model.proto)
        graph = proto.graph
        top = _Scope([], {i.name for i in graph.input} | {name for name, _ in self.initializers})
        for value in graph.input:
            if value.type.tensor_type.elem_type == TensorProto.FLOAT:
                self.kinds[value.name] = LOW if self.low_io else WIDE
                value.type.tensor_type.elem_type = self.type_of(self.kinds[value.name])
        self.graph(graph, top)
        self.rewrite(graph, top)
        want = LOW if self.low_io else WIDE
        producers = {output: node for node in graph.node for output in node.output}
        for value in graph.output:
            if self.kinds.get(value.name, want) != want:  # the output Identity casts instead
                node = producers[value.name]
                node.op_type = "Cast"
                node.attribute.append(helper.make_attribute("to", self.type_of(want)))
                self.kinds[value.name] = want
            if value.name in self.kinds:
                value.type.tensor_type.elem_type = self.type_of(want)
        initializers = []
        for name, array in self.initializers:
            if name not in self.constants or name in self.wide_uses:
                initializers.append((name, array))
            if name in self.low_copies:
                initializers.append((self.low_copies[name], to_low(array, self.numpy_type, name)))
        masks = {copy for name, copy in self.low_copies.items() if name in self.masks}
        kept = {name for name, _ in initializers}
        return LoweredModel(proto, initializers, dict(self.missed), frozenset(masks | (self.masks & kept)))


def to_low(array: np.ndarray, numpy_type: np.dtype, name: str) -> np.ndarray:
    """`array` in the low type; an error, naming it, if a finite value lies beyond the type's range."""
    array = np.asarray(array, np.float32)
    limit = float(ml_dtypes.finfo(numpy_type).max)
    finite = array[np.isfinite(array)]
    if finite.size and float(np.abs(finite).max()) > limit:
        raise TfcError(f"{name}: values up to {float(np.abs(finite).max()):g} do not fit "
                       f"{numpy_type.name} (largest {limit:g}); compile with --dtype bf16 or fp32")
    return array.astype(numpy_type)


@dataclass(frozen=True)
class Converted:
    """A seeded weight's recipe, drawn and converted to the low type when the file is written."""

    array: object
    dtype: np.dtype
    name: str

    @property
    def shape(self):
        return self.array.shape

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    def __array__(self, dtype=None, copy=None):
        out = to_low(np.asarray(self.array), self.dtype, self.name)
        return out if dtype is None else out.astype(dtype)


def retype(model: LoweredModel, precision: str, weights: set[str], blocked: Mapping[str, str] = {},
           low_io: bool = True) -> LoweredModel:
    """The model computed in `precision` (fp16 / bf16); `weights`: the initializers that are weights
    (activations start from them); `blocked`: op types kept in fp32, each with the reason; `low_io`:
    float inputs and outputs in the low type too (else fp32, cast at the edges). The pass around it,
    with its block list, checks and notes: lower/convert_precision.py."""
    return retyper(model, precision, weights, blocked, low_io).model(model) if precision != "fp32" else model


def retyper(model: LoweredModel, precision: str, weights: set[str], blocked: Mapping[str, str] = {},
            low_io: bool = True) -> _Retyper:
    """The retyper of `model`, its float tensors typed by onnx's inference; `.model(model)` retypes, and
    it then holds what it did (`computed`, `kept`, `inserted`, `fp32_casts`, `low_copies`)."""
    return _Retyper(model, precision, weights, blocked, low_io, value_types(model.proto, model.initializers))
