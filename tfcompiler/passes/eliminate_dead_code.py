"""Dead code elimination: remove every node that no graph output depends on.

    x ─ a ─ output          x ─ a ─ output
     └─ b (unused)    =>

Graph inputs are the model's interface and are kept even when unused. Params that die take their
weights with them. Ensures: every node left is a graph input or feeds an output. Other passes leave
their dead nodes to this one (they declare ``before = {"eliminate_dead_code": ...}``).
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

from ..ir.graph import Graph
from .base import ContractError, Pass, PassResult
from .report import span


def dead_nodes(graph: Graph) -> list[int]:
    """The nodes no output depends on, graph inputs aside, in topological order."""
    live = set()
    for value in graph.outputs.values():
        live.add(value.node)
        live |= nx.ancestors(graph.nx_graph, value.node)
    return [n for n in graph.topological() if n not in live and graph.op(n).type != "input"]


class EliminateDeadCode(Pass):
    name = "eliminate_dead_code"
    description = "remove nodes no output depends on"

    def rewrite(self, graph: Graph) -> PassResult:
        dead = dead_nodes(graph)
        if not dead:
            return PassResult(graph, False, ["nothing to remove: every node feeds an output"])
        counts = Counter(graph.op(n).type for n in dead)
        where = span(graph.op(n).origin for n in dead)
        for node in reversed(dead):
            graph.remove(node, safe=False)
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
        return PassResult(graph, True, [f"removed {len(dead)} dead node(s): {kinds} (at {where})"])

    def ensures(self, graph: Graph) -> None:
        dead = dead_nodes(graph)
        if dead:
            raise ContractError(f"{len(dead)} node(s) feed no output, first a {graph.op(dead[0]).type}",
                                graph.op(dead[0]).origin)
