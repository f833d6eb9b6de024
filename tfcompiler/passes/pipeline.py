"""The named pass pipelines and the runner: per-pass timing, change counts, notes for --explain,
optional verification and IR dumps after each pass."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..ir.graph import Graph
from ..ir.verify import VerifyError, verify
from .base import Pass, PassError
from .eliminate_common_subexpressions import EliminateCommonSubexpressions
from .eliminate_dead_code import EliminateDeadCode
from .fold_constants import FoldConstants

# Folding first exposes equal constants to CSE; dead code last sweeps what both left behind.
PIPELINES: dict[str, list] = {
    "default": [FoldConstants, EliminateCommonSubexpressions, EliminateDeadCode],
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


def make_pipeline(name: str = "default") -> list[Pass]:
    return [cls() for cls in PIPELINES[name]]


def run_pipeline(graph: Graph, passes: list[Pass], verify_each: bool = False,
                 dump_after: set[str] = frozenset()) -> tuple[Graph, PipelineReport]:
    report = PipelineReport()
    for p in passes:
        before = len(graph.nodes())
        start = time.perf_counter()
        try:
            p.requires(graph)
            result = p.run(graph)
            p.ensures(result.graph)
            if verify_each:
                verify(result.graph)
        except (VerifyError, ValueError) as e:
            raise PassError(p.name, "", str(e)) from e
        graph = result.graph
        report.records.append(PassRecord(p.name, result.changed, result.notes,
                                         time.perf_counter() - start, before, len(graph.nodes())))
        if p.name in dump_after or "all" in dump_after:
            report.dumps[p.name] = graph.describe()
    return graph, report
