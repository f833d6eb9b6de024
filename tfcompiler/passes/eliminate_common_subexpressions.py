"""Common subexpression elimination: two nodes with the same op, attributes and inputs compute the
same value; keep the first and point the other's users at it.

    x ─ padding_bias ─ attention(layer 0)          x ─ padding_bias ─┬─ attention(layer 0)
    x ─ padding_bias ─ attention(layer 1)    =>                      └─ attention(layer 1)

Builders stay local (each attention makes its own mask bias) and this pass shares the result.
Equal constants merge too; inputs and params (distinct by name) never do.
"""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.ops import op_def
from .base import Pass, PassResult


def _attr_key(value):
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_attr_key(v) for v in value)
    return value


class EliminateCommonSubexpressions(Pass):
    name = "eliminate_common_subexpressions"
    description = "merge nodes that compute the same value"

    def run(self, graph: Graph) -> PassResult:
        seen: dict[tuple, int] = {}
        merged: dict[str, int] = {}
        for node in graph.topological():
            op = graph.op(node)
            if not op_def(op.type).pure:
                continue
            key = (op.type, tuple(sorted((k, _attr_key(v)) for k, v in op.attrs.items())),
                   tuple(graph.inputs_of(node)))
            first = seen.setdefault(key, node)
            if first == node:
                continue
            for port in range(len(op.outputs)):
                graph.replace_all_uses(Value(node, port), Value(first, port))
            graph.remove(node)
            merged[op.type] = merged.get(op.type, 0) + 1
        if not merged:
            return PassResult(graph, False, ["nothing to merge: every node computes a distinct value"])
        counts = ", ".join(f"{n} {t}" for t, n in sorted(merged.items()))
        return PassResult(graph, True, [f"merged {sum(merged.values())} duplicate node(s): {counts}"])
