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
from .fuse_skip_norm import FuseSkipNorm
from .pack_projections import PackProjections
from .quantize_weights import QuantizeWeights
from .sparsify_attention import SparsifyAttention

# Folding first exposes equal constants to CSE; sparsity needs the final attention inputs; packing
# needs CSE's shared inputs; dead code last sweeps what the others left behind.
PIPELINES: dict[str, list] = {
    "default": [FoldConstants, EliminateCommonSubexpressions, SparsifyAttention, PackProjections,
                FuseSkipNorm, EliminateDeadCode],
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


def _compare(pass_name: str, expected: dict, actual: dict, tolerance: float, budget: float = 0.0) -> str:
    """Every output within `tolerance` of the IR before the pipeline, relative to the output's scale
    (max(1, its largest magnitude): a pass may reassociate sums, as one packed GEMM does); after a
    pass that changes numbers on purpose, within `budget` instead: relative RMS error
    ‖after - before‖ / ‖before‖."""
    worst, relative = 0.0, 0.0
    for name, want in expected.items():
        got = actual[name]
        if got.shape != want.shape:
            raise PassError(pass_name, name, f"output shape changed from {want.shape} to {got.shape}")
        difference = got.astype(np.float64) - want
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
        worst = max(worst, float(np.max(np.abs(difference), initial=0.0)) / scale)
        norm = float(np.linalg.norm(want))
        relative = max(relative, float(np.linalg.norm(difference)) / norm if norm else 0.0)
    if budget:
        if relative > budget:
            raise PassError(pass_name, "", f"outputs moved by {relative:.3g} relative RMS (budget {budget:g})")
        return f"numerics checked: outputs within {relative:.3g} relative RMS of the IR before the pipeline " \
               f"(budget {budget:g})"
    if worst > tolerance:
        raise PassError(pass_name, "", f"outputs moved by {worst:.3g} of their scale (tolerance {tolerance:g})")
    return f"numerics checked: outputs within {worst:.3g} of their scale of the IR before the pipeline"


QUANTIZE = {"none": None, "int8": 8, "int4": 4}  # --quantize -> bits


def make_pipeline(name: str = "default", quantize: str = "none", int4_layout: str = "nbits") -> list[Pass]:
    """The named pipeline; with `quantize`, its quantization pass before dead-code elimination (after
    packing, so packed projections are quantized as one); `int4_layout` as the target runs them
    (tfcompiler.passes.quantize_weights)."""
    passes = [cls() for cls in PIPELINES[name]]
    if QUANTIZE[quantize] is not None:
        at = next((i for i, p in enumerate(passes) if isinstance(p, EliminateDeadCode)), len(passes))
        passes.insert(at, QuantizeWeights(QUANTIZE[quantize], int4_layout))
    return passes


def run_pipeline(graph: Graph, passes: list[Pass], verify_each: bool = False,
                 dump_after: set[str] = frozenset(), check_feeds: dict | None = None,
                 tolerance: float = 1e-5) -> tuple[Graph, PipelineReport]:
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
    budget = 0.0
    for p in passes:
        # a pass that changes numbers on purpose (quantization) sets an accuracy budget for itself and after
        budget = max(budget, getattr(p, "budget", 0.0))
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
            result.notes.append(_compare(p.name, expected, run(graph), tolerance, budget))
        report.records.append(PassRecord(p.name, result.changed, result.notes, seconds, before,
                                         len(graph.nodes())))
        if p.name in dump_after or "all" in dump_after:
            report.dumps[p.name] = graph.describe()
    return graph, report
