"""``verify(graph)``: the IR's well-formedness check, run after every pass in tests.

Checks: the graph is acyclic; every node's inputs are numbered 0..n-1 with one producer each and
point at existing outputs; each op's signature and shape rule reproduce the recorded output types;
params' weights, once given, have the declared shape; token chunks hold a well-formed region
(tfcompiler.ir.ops.token_chunks); graph outputs exist.
"""
from __future__ import annotations

import networkx as nx

from .graph import Graph, GraphError, scope
from .ops import infer_types
from .ops.token_chunks import chunk_region


class VerifyError(GraphError):
    """The graph is not well formed at a node; the text names the node's origin."""

    def __str__(self) -> str:
        return f"{scope(self.origin)}: {self.message}" if self.origin else self.message


def verify(graph: Graph) -> None:
    g = graph.nx_graph
    if not nx.is_directed_acyclic_graph(g):
        raise VerifyError(f"graph has a cycle: {nx.find_cycle(g)}")  # (no one node to blame)
    for node in g.nodes:
        op = graph.op(node)
        where = f"{op.type} node {node}"
        ports = sorted(data["dst_input"] for _, _, data in g.in_edges(node, data=True))
        if ports != list(range(len(ports))):
            raise VerifyError(f"{where}: input ports {ports} are not one producer each for 0..n-1", op.origin)
        inputs = graph.inputs_of(node)
        for v in inputs:
            if v.port >= len(graph.op(v.node).outputs):
                raise VerifyError(f"{where}: reads missing output {v}", op.origin)
        try:
            expected = infer_types(op.type, dict(op.attrs), [graph.type_of(v) for v in inputs])
        except ValueError as e:
            raise VerifyError(f"{where}: {e}", op.origin) from None
        if tuple(expected) != op.outputs:
            raise VerifyError(f"{where}: recorded types {op.outputs} but the shape rule gives {expected}", op.origin)
        if op.type == "param":
            weight = graph.weights.get(op.attrs["name"])  # absent until weights are materialised
            if weight is not None and tuple(weight.shape) != tuple(op.attrs["shape"]):
                raise VerifyError(f"{where}: weight {op.attrs['name']!r} has shape {weight.shape}", op.origin)
        if op.type == "chunks_end":
            try:
                chunk_region(graph, node)
            except ValueError as e:
                raise VerifyError(f"{where}: {e}", op.origin) from None
    for name, value in graph.outputs.items():
        if value.node not in g or value.port >= len(graph.op(value.node).outputs):
            raise VerifyError(f"output {name!r} points at a missing value")
