"""The IR graph: typed op nodes over a NetworkX MultiDiGraph whose edges carry ports.

A node is a frozen :class:`Op` record (type, attributes, output types, origin). An edge
``src -> dst`` carries ``(src_output, dst_input)``; a MultiDiGraph keeps ``Mul(x, x)`` as two edges.
Graph inputs are ``input`` nodes, weights are ``param`` nodes whose arrays live in
``Graph.weights``, and graph outputs are an ordered name -> :class:`Value` map.

Passes never touch the NetworkX object: they use :meth:`Graph.add`, :meth:`Graph.replace`,
:meth:`Graph.replace_all_uses` and :meth:`Graph.remove`, which keep ports and types consistent. Inside
``with graph.rewriting(pass_name)`` every node those helpers make records the pass in its
``rewritten_by`` (the pass runner opens it), so a rewrite is marked on the nodes without each pass
remembering to; a failed edit raises :class:`GraphError`, which names the node's spec origin.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, NamedTuple

import networkx as nx
import numpy as np

from .types import TensorType


class Value(NamedTuple):
    """One output of one node."""

    node: int
    port: int = 0


@dataclass(frozen=True)
class Op:
    """What a node computes. ``origin`` is the spec path that produced it (``encoder.layers.3.attention``);
    ``rewritten_by`` lists the passes that created or replaced it."""

    type: str
    attrs: Mapping[str, Any]
    outputs: tuple[TensorType, ...]
    origin: str = ""
    rewritten_by: tuple[str, ...] = ()
    label: str = ""

    @property
    def where(self) -> str:
        return scope(self.origin)


def scope(origin: str) -> str:
    """A spec origin as the scope of its ONNX node names (``decoder.layers.3.attention`` ->
    ``/decoder/layers/3/attention``), where a user finds it in Netron; "the graph" for no origin."""
    return "/" + "/".join(origin.split(".")) if origin else "the graph"


class GraphError(ValueError):
    """A graph edit or check that failed at a node: ``message`` says what, ``origin`` is the node's spec
    path ("" when no node is to blame), so a pass failure can say where."""

    def __init__(self, message: str, origin: str = ""):
        super().__init__(message)
        self.message, self.origin = message, origin


@dataclass
class Graph:
    nx_graph: nx.MultiDiGraph = field(default_factory=nx.MultiDiGraph)
    outputs: dict[str, Value] = field(default_factory=dict)
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    _ids: Iterable[int] = field(default_factory=itertools.count, repr=False)
    _rewriter: str = field(default="", repr=False)  # the pass whose rewrites are being marked

    # --- construction -------------------------------------------------------------------------
    def add(self, op_type: str, inputs: Iterable[Value] = (), attrs: Mapping[str, Any] | None = None,
            origin: str = "", label: str = "", rewritten_by: tuple[str, ...] = ()) -> list[Value]:
        """Add a node; its output types come from the op's shape rule. Returns its output values.
        Inside :meth:`rewriting` the node records that pass after ``rewritten_by`` (its history)."""
        from .ops import infer_types

        inputs = list(inputs)
        attrs = dict(attrs or {})
        try:
            outputs = infer_types(op_type, attrs, [self.type_of(v) for v in inputs])
        except ValueError as e:  # the shape rule's own error type, told where
            e.origin = getattr(e, "origin", "") or origin
            raise
        if self._rewriter and self._rewriter not in rewritten_by:
            rewritten_by = tuple(rewritten_by) + (self._rewriter,)
        node = next(self._ids)
        self.nx_graph.add_node(node, op=Op(op_type, attrs, tuple(outputs), origin, tuple(rewritten_by), label))
        for dst_input, value in enumerate(inputs):
            self.nx_graph.add_edge(value.node, node, src_output=value.port, dst_input=dst_input)
        return [Value(node, port) for port in range(len(outputs))]

    def add1(self, op_type: str, inputs: Iterable[Value] = (), attrs=None, origin: str = "",
             label: str = "") -> Value:
        """:meth:`add` for the common single-output op."""
        (value,) = self.add(op_type, inputs, attrs, origin, label)
        return value

    # --- queries ------------------------------------------------------------------------------
    def op(self, node: int) -> Op:
        return self.nx_graph.nodes[node]["op"]

    def type_of(self, value: Value) -> TensorType:
        return self.op(value.node).outputs[value.port]

    def nodes(self) -> list[int]:
        return list(self.nx_graph.nodes)

    def inputs_of(self, node: int) -> list[Value]:
        edges = sorted(self.nx_graph.in_edges(node, data=True), key=lambda e: e[2]["dst_input"])
        return [Value(src, data["src_output"]) for src, _, data in edges]

    def users(self, value: Value) -> list[tuple[int, int]]:
        """(node, input index) of every use of ``value``."""
        return sorted((dst, data["dst_input"])
                      for _, dst, data in self.nx_graph.out_edges(value.node, data=True)
                      if data["src_output"] == value.port)

    def graph_inputs(self) -> list[int]:
        return [n for n in self.topological() if self.op(n).type == "input"]

    def topological(self) -> list[int]:
        """A deterministic topological order: ties broken by creation order."""
        return list(nx.lexicographical_topological_sort(self.nx_graph))

    def by_type(self, op_type: str) -> list[int]:
        return [n for n in self.topological() if self.op(n).type == op_type]

    # --- rewriting ----------------------------------------------------------------------------
    @contextmanager
    def rewriting(self, pass_name: str):
        """Mark every node made or marked inside as rewritten by ``pass_name``."""
        outer, self._rewriter = self._rewriter, pass_name
        try:
            yield self
        finally:
            self._rewriter = outer

    def replace(self, node: int, op_type: str, inputs: Iterable[Value] | None = None,
                attrs: Mapping[str, Any] | None = None, label: str | None = None) -> list[Value]:
        """Put a new op in ``node``'s place: its origin, its label unless given, its inputs unless
        given, its rewrite history (plus the current pass); every use of the old outputs moves to the
        new node's outputs of the same port, and the old node goes. Returns the new outputs."""
        old = self.op(node)
        new = self.add(op_type, self.inputs_of(node) if inputs is None else inputs, attrs, old.origin,
                       old.label if label is None else label, old.rewritten_by)
        misfits = [f"{old.type} output {port} is {t}, {op_type}'s is "
                   f"{self.type_of(new[port]) if port < len(new) else 'missing'}"
                   for port, t in enumerate(old.outputs) if port >= len(new) or self.type_of(new[port]) != t]
        if misfits:  # refused before any use moved
            self.remove(new[0].node)
            raise GraphError(f"cannot replace: {'; '.join(misfits)}", old.origin)
        for port in range(len(old.outputs)):
            self.replace_all_uses(Value(node, port), new[port])
        self.remove(node)
        return new

    def replace_all_uses(self, old: Value, new: Value) -> None:
        if self.type_of(old) != self.type_of(new):
            raise GraphError(f"cannot replace {self.type_of(old)} with {self.type_of(new)}", self.op(old.node).origin)
        for dst, dst_input in self.users(old):
            self._rewire(dst, dst_input, new)
        for name, value in self.outputs.items():
            if value == old:
                self.outputs[name] = new

    def _rewire(self, dst: int, dst_input: int, new: Value) -> None:
        for src, _, key, data in list(self.nx_graph.in_edges(dst, keys=True, data=True)):
            if data["dst_input"] == dst_input:
                self.nx_graph.remove_edge(src, dst, key)
        self.nx_graph.add_edge(new.node, dst, src_output=new.port, dst_input=dst_input)

    def remove(self, node: int, safe: bool = True) -> None:
        """Delete a node; with ``safe`` it must have no users and feed no graph output."""
        if safe:
            if self.nx_graph.out_degree(node) or any(v.node == node for v in self.outputs.values()):
                raise GraphError(f"node {node} ({self.op(node).type}) is still used", self.op(node).origin)
        if self.op(node).type == "param":
            self.weights.pop(self.op(node).attrs["name"], None)
        self.nx_graph.remove_node(node)

    def mark_rewritten(self, node: int, pass_name: str | None = None) -> None:
        """Record that a pass rewrote ``node`` in place (kept it for others, say); by default the pass
        of the enclosing :meth:`rewriting`."""
        op, pass_name = self.op(node), pass_name or self._rewriter
        if pass_name and pass_name not in op.rewritten_by:
            self.nx_graph.nodes[node]["op"] = replace(op, rewritten_by=op.rewritten_by + (pass_name,))

    def copy(self) -> "Graph":
        """A copy sharing the (immutable) op records and weight arrays."""
        clone = Graph(self.nx_graph.copy(), dict(self.outputs), dict(self.weights), dict(self.metadata))
        clone._ids = itertools.count(max(self.nx_graph.nodes, default=-1) + 1)
        return clone

    def describe(self) -> str:
        """A canonical text form: nodes renamed in topological order (for structural comparison)."""
        names = {}
        lines = []
        for i, node in enumerate(self.topological()):
            names[node] = f"%{i}"
            op = self.op(node)
            args = ", ".join(f"{names[v.node]}.{v.port}" for v in self.inputs_of(node))
            attrs = ", ".join(f"{k}={_attr_text(v)}" for k, v in sorted(op.attrs.items()))
            types = ", ".join(str(t) for t in op.outputs)
            lines.append(f"{names[node]} = {op.type}({args}){{{attrs}}} : {types}")
        for name, value in self.outputs.items():
            lines.append(f"output {name} = {names[value.node]}.{value.port}")
        return "\n".join(lines)


def _attr_text(value) -> str:
    if isinstance(value, np.ndarray):
        return f"array{list(value.shape)}:{value.dtype}"
    return repr(value)
