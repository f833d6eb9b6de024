"""The builder's context: the graph being built, the origin scope that names nodes after their spec
entry, and small emitters (params, linear layers, head reshapes) every family file shares."""
from __future__ import annotations

import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.types import TensorType
from ..limits import check_node_count, out_of_memory_at


@dataclass
class Context:
    graph: Graph = field(default_factory=Graph)
    scope: list[str] = field(default_factory=list)
    inputs: dict[str, Value] = field(default_factory=dict)
    params: dict[str, Value] = field(default_factory=dict)
    carried: dict[str, list] = field(default_factory=dict)  # what a later stack reads from an earlier one
    cache: Any = None  # the decoder's KV cache (tfcompiler.builders.cache.DecoderCache) when it has one

    # --- naming -------------------------------------------------------------------------------
    @contextmanager
    def at(self, *names):
        """Nodes and params made inside are named under this spec path (``encoder.layers.3``)."""
        names = [str(n) for n in names if n != ""]
        self.scope.extend(names)
        try:
            with out_of_memory_at(lambda: self.origin, "building"):  # the innermost entry names it
                yield
        finally:
            del self.scope[len(self.scope) - len(names):]

    @contextmanager
    def at_path(self, path: str):
        """Name what is made inside under ``path`` alone (a stack-level table used by its layers)."""
        saved, self.scope = self.scope, path.split(".")
        try:
            yield
        finally:
            self.scope = saved

    @property
    def origin(self) -> str:
        return ".".join(self.scope)

    # --- emitting -------------------------------------------------------------------------------
    def op(self, op_type: str, *inputs: Value, label: str = "", **attrs) -> Value:
        check_node_count(len(self.graph.nx_graph), self.origin)
        return self.graph.add1(op_type, inputs, attrs, origin=self.origin, label=label)

    def type_of(self, value: Value) -> TensorType:
        return self.graph.type_of(value)

    def param(self, name: str, shape: tuple[int, ...], init: str, full_name: str | None = None) -> Value:
        """A weight named ``<scope>.<name>``; ``init`` is matrix | embedding | zeros | ones | identity
        | fill=<number>."""
        full_name = full_name or ".".join(self.scope + [name])
        if full_name not in self.params:  # a tied weight is one param used twice
            self.params[full_name] = self.graph.add1(
                "param", (), dict(name=full_name, dtype="float32", shape=tuple(shape), init=init),
                origin=self.origin)
        return self.params[full_name]

    def input(self, name: str, dtype: str, shape: tuple, role: str, **attrs) -> Value:
        """A graph input, made once and shared (every stack reading `attention_mask` gets one)."""
        if name not in self.inputs:
            self.inputs[name] = self.graph.add1(
                "input", (), dict(name=name, dtype=dtype, shape=tuple(shape), role=role, **attrs),
                origin=self.origin)
        return self.inputs[name]

    def constant(self, value, dtype="float32") -> Value:
        return self.op("constant", value=np.asarray(value, dtype=dtype))

    def linear(self, x: Value, out_features: int, name: str, bias: bool = True) -> Value:
        """x @ W (+ b) with W stored (in, out) so it lowers to MatMul with no transpose."""
        in_features = self.type_of(x).shape[-1]
        with self.at(name):
            y = self.op("matmul", x, self.param("weight", (in_features, out_features), "matrix"),
                        label="MatMul")
            if bias:
                y = self.op("add", y, self.param("bias", (out_features,), "zeros"), label="Add")
        return y

    def split_heads(self, x: Value, heads: int, head_width: int) -> Value:
        """(B, S, heads*Dh) -> (B, heads, S, Dh)."""
        x = self.op("reshape", x, shape=(0, 0, heads, head_width))
        return self.op("transpose", x, perm=(0, 2, 1, 3))

    def rng(self, seed: int) -> np.random.Generator:
        """Randomness frozen at compile time: a generator seeded by `seed` and the current layer's path,
        so every layer draws its own constants and the same spec always draws the same ones."""
        return np.random.default_rng([seed, zlib.crc32(self.origin.encode())])

    def merge_heads(self, x: Value) -> Value:
        """(B, heads, S, Dh) -> (B, S, heads*Dh)."""
        _, heads, _, head_width = self.type_of(x).shape
        x = self.op("transpose", x, perm=(0, 2, 1, 3))
        return self.op("reshape", x, shape=(0, 0, heads * head_width))
