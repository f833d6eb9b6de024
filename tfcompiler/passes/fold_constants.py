"""Constant folding: a pure node whose inputs are all constants becomes a constant.

    constant ─┐                      
              ├─ mul ─ sin ─ ...  =>  constant (the evaluated result)
    constant ─┘

Values come from the IR's NumPy semantics, so folding cannot change results. Params are weights,
not constants: they stay swappable initializers and are never folded. Results larger than
``max_elements`` are left unfolded so a fold never multiplies the model's size.
"""
from __future__ import annotations

from ..ir.graph import Graph, Value
from ..ir.ops import op_def
from .base import Pass, PassResult


class FoldConstants(Pass):
    name = "fold_constants"
    description = "evaluate nodes whose inputs are all constants"

    def __init__(self, max_elements: int = 1 << 24):
        self.max_elements = max_elements

    def run(self, graph: Graph) -> PassResult:
        folded, too_big, origins = 0, [], []
        for node in graph.topological():
            op = graph.op(node)
            inputs = graph.inputs_of(node)
            if not inputs or not op_def(op.type).pure or op.type == "constant":
                continue
            if not all(graph.op(v.node).type == "constant" for v in inputs):
                continue
            results = op_def(op.type).evaluate(op.attrs, *(graph.op(v.node).attrs["value"] for v in inputs))
            if sum(r.size for r in results) > self.max_elements:
                too_big.append(op.origin)
                continue
            for port, result in enumerate(results):
                (constant,) = graph.add("constant", (), {"value": result}, origin=op.origin,
                                        label=op.label, rewritten_by=(self.name,))
                graph.replace_all_uses(Value(node, port), constant)
            graph.remove(node, safe=False)
            folded += 1
            origins.append(op.origin)
        # the now-unused constant inputs are left to eliminate_dead_code
        notes = []
        if folded:
            where = sorted(set(origins))
            notes.append(f"folded {folded} node(s) at {', '.join(where[:4])}{' ...' if len(where) > 4 else ''}")
        else:
            notes.append("nothing to fold: no pure node has only constant inputs")
        if too_big:
            notes.append(f"left {len(too_big)} node(s) unfolded: result over {self.max_elements} elements")
        return PassResult(graph, folded > 0, notes)
