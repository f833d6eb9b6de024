"""The ONNX emission context: collects nodes and initializers, names them after the spec path
(``/encoder/layers.3/attention/MatMul``) so Netron leads back to the spec entry, and makes the small
int64 constants that shape ops need."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from onnx import GraphProto, NodeProto, TensorProto, helper

from ..limits import check_node_count
from .mask_values import MASK, SELF, THRESHOLD, mask_value


@dataclass
class Emitter:
    opset: int
    kernels: frozenset = frozenset()  # the dedicated kernels the target allows (tfcompiler.lower.targets)
    max_length: int | None = None  # the spec's longest input, when known: lowerings that pay only beyond it are skipped
    precision: str = "fp32"  # what the model computes in (lower/convert_precision.py retypes the emitted fp32 graph)
    nodes: list[NodeProto] = field(default_factory=list)
    initializers: list[tuple[str, np.ndarray]] = field(default_factory=list)
    origin: str = ""
    memo: dict = field(default_factory=dict)  # tensors shared across nodes (e.g. the causal mask)
    missed: Counter = field(default_factory=Counter)  # (fused form, why not) -> how many ops missed it
    masks: set = field(default_factory=set)  # the initializers made by mask(), mask_threshold(), self_mask()
    _names: Counter = field(default_factory=Counter)
    _emitted: int = 0  # nodes emitted so far, subgraphs' included (tfcompiler.limits bounds it)
    _constants: dict = field(default_factory=dict)

    def can(self, kernel: str) -> bool:
        return kernel in self.kernels

    def miss(self, fused: str, reason: str) -> None:
        """Record that an op was lowered without the fused form the target would use, and why:
        `--explain` and `tfc compile` report every miss, never silently."""
        self.missed[(fused, reason)] += 1

    def miss_below(self, fused: str, opset: int) -> None:
        """A miss because the standard gained the fused op at `opset`."""
        self.miss(fused, f"opset {self.opset} < {opset} (--opset {opset} has it)")

    def fp32(self, x: str) -> str:
        """`x` in fp32 in a low-precision model: the one way to declare a region that must compute in
        fp32 (sums that overflow fp16, like a norm's squares). It is an explicit Cast of the float
        tensor to fp32, which the precision pass (lower/convert_precision.py) keeps, computing its
        users in fp32 until they meet an activation; builders ask for it with the IR's keep_fp32."""
        return x if self.precision == "fp32" else self.node1("Cast", x, to=TensorProto.FLOAT, label="ToFloat32")

    def mask(self, name: str | None = None) -> str:
        """The additive bias of a masked key, of the model's precision (lower/mask_values.py): the
        shared scalar constant, or a fresh initializer `name` (the IR's mask_value nodes, named as
        its constants are)."""
        return self._mask(MASK, name)

    def mask_threshold(self) -> str:
        """Half the mask: a key bias at or below it marks a padded key."""
        return self._mask(THRESHOLD)

    def self_mask(self) -> str:
        """LSH's bias of a query's own key: above the mask and the threshold, below every score."""
        return self._mask(SELF)

    def _mask(self, kind: str, name: str | None = None) -> str:
        """Masks are typed constants: recorded by name (LoweredModel.masks), never found by value."""
        value = mask_value(kind, self.precision)
        name = self.const(value, np.float32) if name is None else self.initializer(value, name)
        self.masks.add(name)
        return name

    def unique(self, base: str) -> str:
        self._names[base] += 1
        count = self._names[base]
        return base if count == 1 else f"{base}_{count - 1}"

    def scope_name(self, label: str) -> str:
        path = "/".join(self.origin.split(".")) if self.origin else ""
        return self.unique(f"/{path}/{label}" if path else f"/{label}")

    def node(self, op_type: str, inputs: list[str], n_outputs: int = 1, label: str = "",
             domain: str = "", outputs: list[str] | None = None, **attrs) -> list[str]:
        """Add one node; returns its output tensor names."""
        self._emitted += 1
        check_node_count(self._emitted, self.origin, onnx=True)
        name = self.scope_name(label or op_type)
        outputs = outputs or [f"{name}_output_{i}" for i in range(n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, domain=domain or None,
                                           **attrs))
        return outputs

    def node1(self, op_type: str, *inputs: str, label: str = "", **attrs) -> str:
        return self.node(op_type, list(inputs), label=label, **attrs)[0]

    def branch(self, build, inputs: tuple = (), output_types: tuple | None = None) -> GraphProto:
        """The nodes `build()` emits as a subgraph (an `If` branch, a `Loop` body) whose outputs are the
        names it returns, of `output_types` (TensorProto types; float by default). `inputs`: the
        subgraph's own inputs, (name, TensorProto type) scalars (a Loop body's iteration number and
        condition). It reads the outer graph's tensors by name; the tensors it shares through `memo`
        are forgotten after it, since the outer graph cannot read a subgraph's tensors."""
        outer, memo, self.nodes = self.nodes, dict(self.memo), []
        try:
            outputs = build()
            nodes = self.nodes
        finally:
            self.nodes, self.memo = outer, memo
        types = output_types or [TensorProto.FLOAT] * len(outputs)
        return helper.make_graph(nodes, self.unique("subgraph"),
                                 [helper.make_tensor_value_info(name, kind, []) for name, kind in inputs],
                                 [helper.make_tensor_value_info(name, kind, None)
                                  for name, kind in zip(outputs, types)])

    def loop(self, count: str, body, label: str, results: int = 1):
        """A `Loop` of `count` (scalar int64) iterations; `body(index)` emits one iteration's nodes and
        returns its float result (a list of `results` of them), each of the same shape in every
        iteration; returns them stacked on a new first axis (a list when `results` > 1)."""
        index, keep_going = self.unique("iteration"), self.unique("keep_going")

        def build():
            out = body(index)
            return [self.node1("Identity", keep_going), *(out if results > 1 else [out])]

        graph = self.branch(build, inputs=((index, TensorProto.INT64), (keep_going, TensorProto.BOOL)),
                            output_types=(TensorProto.BOOL,) + (TensorProto.FLOAT,) * results)
        outputs = self.node("Loop", [count, self.const(True, np.bool_)], n_outputs=results, body=graph, label=label)
        return outputs if results > 1 else outputs[0]

    def initializer(self, array: np.ndarray, name: str) -> str:
        # weight recipes (seeded weights) stay recipes: the writer draws them straight into the file
        self.initializers.append((name, array if hasattr(array, "nbytes") else np.asarray(array)))
        return name

    def retype(self, name: str, data_type: int, dims: tuple) -> str:
        """Declare initializer `name` as another ONNX type over the same bytes (uint8 pairs of codes
        as a UINT4 tensor of `dims`); returns the name."""
        for i, (other, array) in enumerate(self.initializers):
            if other == name and not isinstance(array, Retyped):
                self.initializers[i] = (name, Retyped(array, data_type, tuple(dims)))
        return name

    def const(self, values, dtype=np.int64) -> str:
        """A small shared constant (shapes, axes, scalars), deduplicated by value."""
        array = np.asarray(values, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.unique(f"/constants/{array.dtype.name}_{'x'.join(map(str, array.shape)) or 'scalar'}")
            self._constants[key] = self.initializer(array, name)
        return self._constants[key]


@dataclass(frozen=True)
class Retyped:
    """An initializer written with its own ONNX type and dims over an array's bytes (the writer
    reads `tensor_type` and `tensor_dims`); an array or a weight recipe, made when needed."""

    array: object
    tensor_type: int
    tensor_dims: tuple

    @property
    def shape(self):
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def nbytes(self) -> int:
        return self.array.nbytes

    def __array__(self, dtype=None, copy=None):
        out = np.asarray(self.array)
        return out if dtype is None else out.astype(dtype)
