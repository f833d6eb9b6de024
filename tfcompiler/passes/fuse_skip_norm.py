"""Fuse a residual sum and the norm that reads it into one canonical skip_norm op:

    a ─┐                                 a ─┐
       add ─ layer_norm ─ y      =>         skip_norm ─ y        (output 0: the norm)
    b ─┘   └─ (other users)              b ─┘         └─ (other users of a + b: output 1)

Post-norm blocks end in norm(x + f(x)); pre-norm blocks sum the residual and normalise it for the
next sublayer. The op lowers to onnxruntime's SkipLayerNormalization (or, for RMSNorm,
SkipSimplifiedLayerNormalization) where the target's capability table lists it, and to Add + the
norm elsewhere (on CPU the fused kernels measured slower, so no CPU target lists them). Only sums of
two equal-typed tensors fuse (a broadcast bias add is not a residual). Ensures: no norm reading a
fusable residual sum is left.
"""
from __future__ import annotations

from ..ir.graph import Graph
from .base import ContractError, Pass, PassResult
from .matching import Match, misses
from .report import span

NORMS = ("layer_norm", "rms_norm")


def match_skip_norm(graph: Graph, node: int) -> Match:
    """A norm whose normalised input is the sum of two equal-typed tensors: binds the sum."""
    x = graph.inputs_of(node)[0]
    if graph.op(x.node).type != "add" or x.port != 0:
        return Match.fail("its input is not a sum")
    a, b = graph.inputs_of(x.node)
    if graph.type_of(a) != graph.type_of(b):
        return Match.fail("its input is a broadcast add, not a residual sum")
    return Match.of(total=x, a=a, b=b)


class FuseSkipNorm(Pass):
    name = "fuse_skip_norm"
    description = "residual add + norm as one skip_norm op"

    def rewrite(self, graph: Graph) -> PassResult:
        fused, failed = [], []
        for node in graph.topological():
            op = graph.op(node)
            if op.type not in NORMS:
                continue
            match = match_skip_norm(graph, node)
            if not match:
                failed.append((op.origin, match.reason))
                continue
            total, params = match.bound["total"], graph.inputs_of(node)[1:]
            outputs = graph.replace(node, "skip_norm", (match.bound["a"], match.bound["b"], *params),
                                    dict(kind=op.type, epsilon=op.attrs["epsilon"]), label=f"Skip{op.label or 'Norm'}")
            graph.replace_all_uses(total, outputs[1])
            graph.remove(total.node)
            fused.append(op.origin)
        if not fused:
            why = misses(failed, "norm(s)") if failed else ["no layer_norm or rms_norm in the graph"]
            return PassResult(graph, False, ["nothing to fuse: no norm reads a residual sum"] + why)
        return PassResult(graph, True, [f"fused {len(fused)} residual add(s) into the norm that reads them "
                                        f"at {span(fused)}"] + misses(failed, "norm(s)"))

    def ensures(self, graph: Graph) -> None:
        for node in graph.topological():
            if graph.op(node).type in NORMS and match_skip_norm(graph, node):
                raise ContractError(f"{graph.op(node).type} still reads a residual sum", graph.op(node).origin)
