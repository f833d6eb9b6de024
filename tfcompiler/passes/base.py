"""The pass contract: ``run(graph) -> PassResult(graph, changed, notes)``.

A pass rewrites the graph through the Graph API only and reports in ``notes`` what it did, or, when
it changed nothing, why (``tfc compile --explain`` prints them). ``requires``/``ensures`` are
optional checks of a pass's preconditions and postconditions, so ordering needs are written down
rather than implied by position in the pipeline.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..ir.graph import Graph


@dataclass
class PassResult:
    graph: Graph
    changed: bool
    notes: list[str] = field(default_factory=list)


class Pass:
    name = "pass"
    description = ""

    def run(self, graph: Graph) -> PassResult:
        raise NotImplementedError

    def requires(self, graph: Graph) -> None:
        """Raise if the graph is not ready for this pass."""

    def ensures(self, graph: Graph) -> None:
        """Raise if the pass left the graph without the property it promises."""


class PassError(Exception):
    """A pass failed; names the pass and the node (its spec origin)."""

    def __init__(self, pass_name: str, where: str, message: str):
        super().__init__(f"pass {pass_name} failed at {where or '?'}: {message}")
