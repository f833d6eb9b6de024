"""The pass contract: ``run(graph) -> PassResult(graph, changed, notes)``.

A pass implements ``rewrite(graph)``: it edits the graph through the Graph API only and reports in
``notes`` what it did or, when it changed nothing, why (``tfc compile --explain`` prints them).
``run`` wraps it as onnx-ir's pass infrastructure does: ``requires(graph)`` (the preconditions),
the rewrite inside ``graph.rewriting(name)`` (so every node it makes or marks records the pass in
``rewritten_by``), then ``ensures(graph)`` (the promise: the property the pass leaves, e.g. no dead
node after dead-code elimination). Both checks raise :class:`ContractError` naming the node at fault.

Ordering needs between passes are declared, not implied by position: ``after`` names the passes that
must run earlier when a pipeline holds them, ``before`` those that must run later, each with the
reason; the pipeline (tfcompiler.passes.pipeline) refuses an order that breaks one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ..ir.graph import Graph, GraphError


@dataclass
class PassResult:
    graph: Graph
    changed: bool
    notes: list[str] = field(default_factory=list)


class ContractError(GraphError):
    """A pass's ``requires`` or ``ensures`` check failed; ``origin`` names the node at fault."""


class Pass:
    name = "pass"
    description = ""
    after: Mapping[str, str] = {}  # pass name -> why this pass must run after it (when both are in a pipeline)
    before: Mapping[str, str] = {}  # pass name -> why this pass must run before it

    def run(self, graph: Graph) -> PassResult:
        """Check the preconditions, rewrite (marking what changes), check the promise."""
        self.requires(graph)
        with graph.rewriting(self.name):
            result = self.rewrite(graph)
        self.ensures(result.graph)
        return result

    def rewrite(self, graph: Graph) -> PassResult:
        raise NotImplementedError

    def requires(self, graph: Graph) -> None:
        """Raise ContractError if the graph is not ready for this pass."""

    def ensures(self, graph: Graph) -> None:
        """Raise ContractError if the pass left the graph without the property it promises."""


class PassError(Exception):
    """A pass failed: names the pass and where (the scope of the node's spec origin, an output)."""

    def __init__(self, pass_name: str, where: str, message: str):
        super().__init__(f"pass {pass_name} failed at {where}: {message}" if where
                         else f"pass {pass_name} failed: {message}")
        self.pass_name, self.where, self.message = pass_name, where, message


def located(graph: Graph, node: int) -> str:
    """Where a node is, for messages: the scope of its origin, or its type and id when it has none."""
    op = graph.op(node)
    return op.where if op.origin else f"{op.type} node {node}"
