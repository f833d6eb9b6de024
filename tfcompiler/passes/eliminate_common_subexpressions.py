"""Common subexpression elimination: two nodes with the same op, attributes and inputs compute the
same value; keep the first and point the other's users at it.

    x ─ padding_bias ─ attention(layer 0)          x ─ padding_bias ─┬─ attention(layer 0)
    x ─ padding_bias ─ attention(layer 1)    =>                      └─ attention(layer 1)

Builders stay local (each attention makes its own mask bias) and this pass shares the result.
Equal constants merge too; inputs and params (distinct by name) never do. The kept node is marked
(``rewritten_by``). Ensures: no two pure nodes compute the same value — one sweep in topological
order suffices, as a node is keyed after its inputs were merged.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.ops import op_def
from .base import ContractError, Pass, PassResult
from .report import span


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    return value


def value_key(graph: Graph, node: int) -> tuple | None:
    """What a pure node computes (op, attributes, inputs); None for an impure one (inputs, params)."""
    op = graph.op(node)
    if not op_def(op.type).pure:
        return None
    return (op.type, tuple(sorted((k, _attr_key(v)) for k, v in op.attrs.items())), tuple(graph.inputs_of(node)))


def duplicates(graph: Graph, nodes=None) -> list[tuple[int, int]]:
    """(first, later) for every pure node among ``nodes`` (default all) that computes the same value
    as an earlier one, in topological order."""
    seen: dict[tuple, int] = {}
    pairs = []
    for node in graph.topological() if nodes is None else nodes:
        key = value_key(graph, node)
        if key is not None and seen.setdefault(key, node) != node:
            pairs.append((seen[key], node))
    return pairs


class EliminateCommonSubexpressions(Pass):
    name = "eliminate_common_subexpressions"
    description = "merge nodes that compute the same value"
    after = {"fold_constants": "folding makes equal constants out of different subgraphs, which only then merge"}

    def rewrite(self, graph: Graph) -> PassResult:
        seen: dict[tuple, int] = {}
        merged, origins = Counter(), []
        for node in graph.topological():
            key = value_key(graph, node)
            if key is None or seen.setdefault(key, node) == node:
                continue
            first, op = seen[key], graph.op(node)
            for port in range(len(op.outputs)):
                graph.replace_all_uses(Value(node, port), Value(first, port))
            graph.remove(node)
            graph.mark_rewritten(first)
            merged[op.type] += 1
            origins.append(op.origin)
        if not merged:
            return PassResult(graph, False, ["nothing to merge: every node computes a distinct value"])
        counts = ", ".join(f"{n} {t}" for t, n in sorted(merged.items()))
        return PassResult(graph, True, [f"merged {sum(merged.values())} duplicate node(s): {counts} "
                                        f"(from {span(origins)})"])

    def ensures(self, graph: Graph) -> None:
        pairs = duplicates(graph)
        if pairs:
            first, later = pairs[0]
            raise ContractError(f"{graph.op(later).type} computes the same value as node {first}",
                                graph.op(later).origin)
