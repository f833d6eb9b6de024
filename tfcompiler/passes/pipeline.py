"""The named pass pipelines and the runner: per-pass timing, change counts, notes for --explain,
optional verification and IR dumps after each pass."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..ir.graph import Graph
from ..ir.interpret import evaluate
from ..ir.verify import VerifyError, verify
from .base import Pass, PassError
from .eliminate_common_subexpressions import EliminateCommonSubexpressions
from .eliminate_dead_code import EliminateDeadCode
from .fold_constants import FoldConstants
from .sparsify_attention import SparsifyAttention

# Folding first exposes equal constants to CSE; sparsity needs the final attention inputs; dead code
# last sweeps what the others left behind.
PIPELINES: dict[str, list] = {
    "default": [FoldConstants, EliminateCommonSubexpressions, SparsifyAttention, EliminateDeadCode],
    "none": [],
}


@dataclass
class PassRecord:
    name: str
    changed: bool
    notes: list[str]
    seconds: float
    nodes_before: int
    nodes_after: int


@dataclass
class PipelineReport:
    records: list[PassRecord] = field(default_factory=list)
    dumps: dict[str, str] = field(default_factory=dict)

    def explain(self) -> str:
        lines = []
        for r in self.records:
            status = "changed" if r.changed else "unchanged"
            lines.append(f"{r.name}: {status}, {r.nodes_before} -> {r.nodes_after} nodes, "
                         f"{r.seconds * 1000:.1f} ms")
            lines.extend(f"  {note}" for note in r.notes)
        return "\n".join(lines)


def _compare(pass_name: str, expected: dict, actual: dict, tolerance: float) -> str:
    worst = 0.0
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape:
            raise PassError(pass_name, name, f"output shape changed from {want.shape} to {got.shape}")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want), initial=0.0)))
    if worst > tolerance:
        raise PassError(pass_name, "", f"outputs moved by {worst:.3g} (tolerance {tolerance:g})")
    return f"numerics checked: outputs within {worst:.3g} of the IR before the pipeline"


def make_pipeline(name: str = "default") -> list[Pass]:
    return [cls() for cls in PIPELINES[name]]


def run_pipeline(graph: Graph, passes: list[Pass], verify_each: bool = False,
                 dump_after: set[str] = frozenset(), check_feeds: dict | None = None,
                 tolerance: float = 1e-6) -> tuple[Graph, PipelineReport]:
    """Run ``passes`` in order. ``verify_each`` runs ``verify()`` after every pass; ``check_feeds``
    also evaluates the IR on those inputs before the first pass and after each one, and fails the
    pass whose outputs move by more than ``tolerance``."""
    report = PipelineReport()
    drawn: dict = {}

    def run(graph):  # seeded weights are drawn once for all the evaluations
        for name, w in graph.weights.items():
            if (name, id(w)) not in drawn:
                drawn[name, id(w)] = np.asarray(w)
        return evaluate(graph, check_feeds, {name: drawn[name, id(w)] for name, w in graph.weights.items()})

    expected = run(graph) if check_feeds is not None else None
    for p in passes:
        before = len(graph.nodes())
        try:
            p.requires(graph)
            start = time.perf_counter()
            result = p.run(graph)
            seconds = time.perf_counter() - start
            p.ensures(result.graph)
            if verify_each:
                verify(result.graph)
        except (VerifyError, ValueError) as e:
            raise PassError(p.name, "", str(e)) from e
        graph = result.graph
        if expected is not None:
            result.notes.append(_compare(p.name, expected, run(graph), tolerance))
        report.records.append(PassRecord(p.name, result.changed, result.notes, seconds, before,
                                         len(graph.nodes())))
        if p.name in dump_after or "all" in dump_after:
            report.dumps[p.name] = graph.describe()
    return graph, report
