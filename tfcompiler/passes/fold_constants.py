"""Constant folding: a pure node whose inputs are all constants becomes a constant.

    constant ─┐
              ├─ mul ─ sin ─ ...  =>  constant (the evaluated result)
    constant ─┘

Values come from the IR's NumPy semantics, so folding cannot change results. Params are weights,
not constants: they stay swappable initializers and are never folded. Results larger than
``max_elements`` are left unfolded so a fold never multiplies the model's size. Ensures: no node
with only constant inputs is left, but for those too large. The folded nodes' inputs are left dead
for eliminate_dead_code.
"""
from __future__ import annotations

import math

from ..ir.graph import Graph, Value
from ..ir.ops import op_def
from .base import ContractError, Pass, PassResult
from .report import span


def foldable(graph: Graph, node: int) -> bool:
    """A pure node, not itself a constant, whose inputs are all constants."""
    op = graph.op(node)
    inputs = graph.inputs_of(node)
    return (bool(inputs) and op.type != "constant" and op_def(op.type).pure
            and all(graph.op(v.node).type == "constant" for v in inputs))


class FoldConstants(Pass):
    name = "fold_constants"
    description = "evaluate nodes whose inputs are all constants"
    before = {"eliminate_dead_code": "a folded node's constant inputs are left dead for it"}

    def __init__(self, max_elements: int = 1 << 24):
        self.max_elements = max_elements

    def rewrite(self, graph: Graph) -> PassResult:
        folded, too_big = [], []
        for node in graph.topological():
            if not foldable(graph, node):
                continue
            op = graph.op(node)
            values = (graph.op(v.node).attrs["value"] for v in graph.inputs_of(node))
            results = op_def(op.type).evaluate(op.attrs, *values)
            if sum(r.size for r in results) > self.max_elements:
                too_big.append(op.origin)
                continue
            for port, result in enumerate(results):
                (constant,) = graph.add("constant", (), {"value": result}, origin=op.origin, label=op.label,
                                        rewritten_by=op.rewritten_by)
                graph.replace_all_uses(Value(node, port), constant)
            graph.remove(node, safe=False)
            folded.append(op.origin)
        notes = [f"folded {len(folded)} node(s) at {span(folded)}" if folded
                 else "nothing to fold: no pure node has only constant inputs"]
        if too_big:
            notes.append(f"left {len(too_big)} node(s) unfolded: result over {self.max_elements} elements "
                         f"(at {span(too_big)})")
        return PassResult(graph, bool(folded), notes)

    def ensures(self, graph: Graph) -> None:
        for node in graph.topological():
            if foldable(graph, node) and self._fits(graph, node):
                raise ContractError(f"{graph.op(node).type} still has only constant inputs", graph.op(node).origin)

    def _fits(self, graph: Graph, node: int) -> bool:
        """Whether the node's results are within max_elements (by its recorded types; an unknown
        size is taken as too large, as the rewrite measured it)."""
        sizes = [math.prod(t.shape) if all(isinstance(d, int) for d in t.shape) else None
                 for t in graph.op(node).outputs]
        return None not in sizes and sum(sizes) <= self.max_elements
