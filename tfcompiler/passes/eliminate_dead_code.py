"""Dead code elimination: remove every node that no graph output depends on.

    x ─ a ─ output          x ─ a ─ output
     └─ b (unused)    =>

Graph inputs are the model's interface and are kept even when unused. Params that die take their
weights with them.
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

from ..ir.graph import Graph
from .base import Pass, PassResult


class EliminateDeadCode(Pass):
    name = "eliminate_dead_code"
    description = "remove nodes no output depends on"

    def run(self, graph: Graph) -> PassResult:
        live = set()
        for value in graph.outputs.values():
            live.add(value.node)
            live |= nx.ancestors(graph.nx_graph, value.node)
        dead = [n for n in graph.topological() if n not in live and graph.op(n).type != "input"]
        if not dead:
            return PassResult(graph, False, ["nothing to remove: every node feeds an output"])
        counts = Counter(graph.op(n).type for n in dead)
        for node in reversed(dead):
            graph.remove(node, safe=False)
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        return PassResult(graph, True, [f"removed {len(dead)} dead node(s): {kinds}"])
