"""Fuse a residual sum and the norm that reads it into one canonical skip_norm op:

    a ─┐                                 a ─┐
       add ─ layer_norm ─ y      =>         skip_norm ─ y        (output 0: the norm)
    b ─┘   └─ (other users)              b ─┘         └─ (other users of a + b: output 1)

Post-norm blocks end in norm(x + f(x)); pre-norm blocks sum the residual and normalise it for the
next sublayer. The op lowers to onnxruntime's SkipLayerNormalization (or, for RMSNorm,
SkipSimplifiedLayerNormalization) where the target's capability table lists it, and to Add + the
norm elsewhere (on CPU the fused kernels measured slower, so no CPU target lists them). Only sums of
two equal-typed tensors fuse (a broadcast bias add is not a residual).
"""
from __future__ import annotations

from ..ir.graph import Graph, Value
from .base import Pass, PassResult

NORMS = ("layer_norm", "rms_norm")


class FuseSkipNorm(Pass):
    name = "fuse_skip_norm"
    description = "residual add + norm as one skip_norm op"

    def run(self, graph: Graph) -> PassResult:
        fused = 0
        for node in graph.topological():
            op = graph.op(node)
            if op.type not in NORMS:
                continue
            x, *params = graph.inputs_of(node)
            total = graph.op(x.node)
            if total.type != "add" or x.port != 0:
                continue
            a, b = graph.inputs_of(x.node)
            if graph.type_of(a) != graph.type_of(b):
                continue
            outputs = graph.add("skip_norm", (a, b, *params), dict(kind=op.type, epsilon=op.attrs["epsilon"]),
                                origin=op.origin, label=f"Skip{op.label or 'Norm'}")
            graph.replace_all_uses(Value(node, 0), outputs[0])
            graph.remove(node)
            graph.replace_all_uses(x, outputs[1])
            graph.remove(x.node)
            fused += 1
        if not fused:
            return PassResult(graph, False, ["nothing to fuse: no norm reads a residual sum"])
        return PassResult(graph, True, [f"fused {fused} residual add(s) into the norm that reads them"])
