"""The named pass pipelines and the runner: per-pass timing, change counts, notes and rewrites for
--explain, optional verification, numeric checks and IR dumps after each pass.

The order of a pipeline is checked, not implied: each pass declares the passes it must run after
(``after``) or before (``before``) when both are present, with the reason, and ``make_pipeline`` and
``run_pipeline`` refuse an order that breaks one (:class:`OrderError`). The runner also holds each
pass to its report: a pass that says it changed nothing must leave the node set and every node's
marks as they were and say why in a note; one that says it changed the graph must have.
"""
from __future__ import annotations

import time
from collections import Counter

from ..ir.graph import Graph, scope
from ..ir.verify import verify
from .base import Pass, PassError, located
from .eliminate_common_subexpressions import EliminateCommonSubexpressions
from .eliminate_dead_code import EliminateDeadCode
from .fold_constants import FoldConstants
from .fuse_cached_attention import FuseCachedAttention
from .fuse_skip_norm import FuseSkipNorm
from .numerics import NumericCheck
from .pack_projections import PackProjections
from .quantize_weights import QuantizeWeights
from .report import PassRecord, PipelineReport
from .sparsify_attention import SparsifyAttention

PIPELINES: dict[str, list[type[Pass]]] = {
    "default": [FoldConstants, EliminateCommonSubexpressions, SparsifyAttention, PackProjections,
                FuseSkipNorm, FuseCachedAttention, EliminateDeadCode],
    "none": [],
}
QUANTIZE = {"none": None, "int8": 8, "int4": 4}  # --quantize -> bits


class OrderError(ValueError):
    """A pipeline runs a pass before one it must follow (or after one it must precede)."""


def check_order(passes: list[Pass]) -> None:
    """Refuse an order that breaks a pass's ``after`` or ``before`` declaration."""
    names = [p.name for p in passes]
    for i, p in enumerate(passes):
        for other, why in p.after.items():
            if other in names[i + 1:]:
                raise OrderError(f"pipeline {' -> '.join(names)}: {p.name} must run after {other} ({why})")
        for other, why in p.before.items():
            if other in names[:i]:
                raise OrderError(f"pipeline {' -> '.join(names)}: {p.name} must run before {other} ({why})")


def place(passes: list[Pass], extra: Pass) -> list[Pass]:
    """``passes`` with ``extra`` as late as its declarations allow: before the first pass it must
    precede, so it sees every other rewrite (check_order then checks the passes it must follow)."""
    ends = [i for i, p in enumerate(passes) if p.name in extra.before or extra.name in p.after]
    at = min(ends, default=len(passes))
    return passes[:at] + [extra] + passes[at:]


def make_pipeline(name: str = "default", quantize: str = "none", int4_layout: str = "nbits") -> list[Pass]:
    """The named pipeline; with `quantize`, its quantization pass placed by its declarations (after
    packing, so packed projections are quantized as one; before dead-code elimination, which drops
    the float weights); `int4_layout` as the target runs them (tfcompiler.passes.quantize_weights)."""
    passes = [cls() for cls in PIPELINES[name]]
    if QUANTIZE[quantize] is not None:
        passes = place(passes, QuantizeWeights(QUANTIZE[quantize], int4_layout))
    check_order(passes)
    return passes


def run_pipeline(graph: Graph, passes: list[Pass], verify_each: bool = False,
                 dump_after: set[str] = frozenset(), check_feeds: dict | None = None,
                 tolerance: float = 1e-5) -> tuple[Graph, PipelineReport]:
    """Run ``passes`` in order (once check_order accepts it). ``verify_each`` runs ``verify()`` after
    every pass; ``check_feeds`` also evaluates the IR on those inputs before the first pass and after
    each one, and fails the pass whose outputs move by more than ``tolerance`` (tfcompiler.passes.numerics).
    A failure is a PassError naming the pass and the scope of the node at fault."""
    check_order(passes)
    report = PipelineReport()
    numerics = NumericCheck(graph, check_feeds, tolerance) if check_feeds is not None else None
    for p in passes:
        marks = {n: graph.op(n).rewritten_by for n in graph.nodes()}
        before = graph.copy() if numerics else None
        try:
            start = time.perf_counter()
            result = p.run(graph)
            seconds = time.perf_counter() - start
            if verify_each:
                verify(result.graph)
        except ValueError as e:  # GraphError (verify's, a contract's) and shape rules' errors carry the origin
            origin = getattr(e, "origin", "")
            raise PassError(p.name, scope(origin) if origin else "", getattr(e, "message", str(e))) from e
        graph = result.graph
        rewrites = Counter((graph.op(n).type, graph.op(n).origin) for n in graph.nodes()
                           if p.name in graph.op(n).rewritten_by and p.name not in marks.get(n, ()))
        _hold_to_report(p, result.changed, result.notes, graph, marks, rewrites)
        if numerics:
            result.notes.append(numerics.check(p, before, graph))
        report.records.append(PassRecord(p.name, result.changed, result.notes, seconds, len(marks),
                                         len(graph.nodes()), rewrites))
        if p.name in dump_after or "all" in dump_after:
            report.dumps[p.name] = graph.describe()
    return graph, report


def _hold_to_report(p: Pass, changed: bool, notes: list[str], graph: Graph, marks: dict, rewrites: Counter) -> None:
    """A pass's ``changed`` and notes must tell what it did to the graph."""
    added = [n for n in graph.nodes() if n not in marks]
    removed = len(marks) + len(added) - len(graph.nodes())
    if changed and not (added or removed or rewrites):
        raise PassError(p.name, "", "it reported a change but left the graph as it was")
    if not changed and (added or removed or rewrites):
        where = located(graph, added[0]) if added else ""
        raise PassError(p.name, where, f"it reported no change but added {len(added)} node(s), removed {removed} "
                                       f"and marked {sum(rewrites.values())}")
    if not changed and not notes:
        raise PassError(p.name, "", "it changed nothing and did not say why")
