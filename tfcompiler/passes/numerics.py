"""The pipeline's numeric check (``tfc compile --verify``): the IR is evaluated on small random
inputs before the first pass and after each one (NumPy interpreter), and a pass whose outputs move
fails. The failure names the output that moved most and where it moved first: the first node, in
topological order, that the graph holds before and after the pass and whose value moved — or the
node the pass made that it reads, the likelier culprit; when none moved, the node that now produces
the output."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.interpret import evaluate
from .base import Pass, PassError, located


def _max_error(want: np.ndarray, got: np.ndarray) -> float:
    """Largest difference relative to the value's scale, max(1, its largest magnitude): a pass may
    reassociate sums, as one packed GEMM does."""
    want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    return float(np.max(np.abs(got - want), initial=0.0)) / scale


def rms_error(want: np.ndarray, got: np.ndarray) -> float:
    """Relative RMS error ‖got - want‖ / ‖want‖ (0 for a zero value)."""
    want, got = np.asarray(want, np.float64), np.asarray(got, np.float64)
    norm = float(np.linalg.norm(want))
    return float(np.linalg.norm(got - want)) / norm if norm else 0.0


class NumericCheck:
    """Outputs within ``tolerance`` of the IR before the pipeline; after a pass that changes numbers
    on purpose (it has a ``budget``: quantization), within that relative RMS error instead."""

    def __init__(self, graph: Graph, feeds: dict, tolerance: float):
        self.feeds, self.tolerance, self.budget, self.drawn = feeds, tolerance, 0.0, {}
        self.expected = self.evaluate(graph)

    def evaluate(self, graph: Graph) -> dict[str, np.ndarray]:
        for name, w in graph.weights.items():  # seeded weights are drawn once for all the evaluations
            if (name, id(w)) not in self.drawn:
                self.drawn[name, id(w)] = np.asarray(w)
        return evaluate(graph, self.feeds, {name: self.drawn[name, id(w)] for name, w in graph.weights.items()})

    def check(self, p: Pass, before: Graph, after: Graph) -> str:
        """The note for --explain; raises PassError when an output moved too far."""
        self.budget = max(self.budget, getattr(p, "budget", 0.0))
        error, limit = (rms_error, self.budget) if self.budget else (_max_error, self.tolerance)
        actual = self.evaluate(after)
        for name, want in self.expected.items():
            if actual[name].shape != want.shape:
                raise PassError(p.name, f"output {name!r}", f"shape changed from {want.shape} to {actual[name].shape}")
        errors = {name: error(want, actual[name]) for name, want in self.expected.items()}
        name = max(errors, key=errors.get, default=None)
        worst = errors.get(name, 0.0)
        what = "relative RMS" if self.budget else "of their scale"
        if worst > limit:
            bound = f"budget {limit:g}" if self.budget else f"tolerance {limit:g}"
            where = self.first_moved(before, after, error, limit) or located(after, after.outputs[name].node)
            raise PassError(p.name, where, f"output {name!r} moved by {worst:.3g} {what} ({bound})")
        if self.budget:
            return f"numerics checked: outputs within {worst:.3g} relative RMS of the IR before the pipeline " \
                   f"(budget {limit:g})"
        return f"numerics checked: outputs within {worst:.3g} of their scale of the IR before the pipeline"

    def first_moved(self, before: Graph, after: Graph, error, limit: float) -> str:
        """Where the first value both graphs compute moved by more than ``limit``; "" if none did."""
        common = [n for n in after.topological() if n in before.nx_graph]
        values = [Value(n, port) for n in common for port in range(len(after.op(n).outputs))]
        was, now = (self.evaluate(_probe(g, values)) for g in (before, after))
        for value in values:
            key = str(value)
            if was[key].shape != now[key].shape or error(was[key], now[key]) > limit:
                made = [v.node for v in after.inputs_of(value.node) if v.node not in before.nx_graph]
                return located(after, made[0] if made else value.node)  # the pass's own node, if it reads one
        return ""


def _probe(graph: Graph, values: list[Value]) -> Graph:
    """A copy of the graph whose outputs are ``values`` (named by their text)."""
    probe = graph.copy()
    probe.outputs = {str(v): v for v in values}
    return probe
