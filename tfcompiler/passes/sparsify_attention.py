"""Sparsity pass: an attention with a static sparse pattern becomes an op that never forms the dense
(S, T) scores, when one of the pattern's rewrites (tfcompiler.passes.sparse_rewrites) applies.

    attention(q, k, v, key_bias; pattern=Window(w, w))
      =>  banded_attention(q, k, v, key_bias; block=w, back_blocks=1, ahead_blocks=1)   (w <= 256)

Query block n (of `block` positions, the sequence padded to whole blocks inside the graph) attends
key blocks n - back_blocks .. n + ahead_blocks, with the pattern, causality, padding and the
sequence end masked there, so the result equals the dense masked attention exactly (checked by
evaluating the IR before and after). Global tokens (Longformer) ride along: their keys are extra
columns of every block and their queries dense rows. A block layout whose rows list few key blocks
(BigBird) gathers its key blocks by a constant index; the Sparse Transformer's fixed pattern
attends its own block and every block's summary positions; its strided pattern becomes banded
blocks of the stride plus strided key columns. Applies to self-attention with no bias other than
key padding.

The pass dispatches on the pattern's type to its rewrites, tried in order; the first that matches
replaces the node (its attributes updated, its origin and label kept). Where none matches, the
attention keeps the dense masked form and the note gives each rewrite's reason. Ensures: no
attention is left that one of its pattern's rewrites matches.
"""
from __future__ import annotations

from ..ir.graph import Graph
from .base import ContractError, Pass, PassResult, located
from .matching import Match
from .report import span
from .sparse_rewrites import REWRITES, Rewrite


def first_match(graph: Graph, node: int) -> tuple[Rewrite | None, Match | list[str]]:
    """The first rewrite of the node's pattern that matches and its match, or (None, the reasons)."""
    pattern = graph.op(node).attrs["pattern"]
    reasons = []
    for rewrite in REWRITES.get(type(pattern), ()):
        match = rewrite.match(graph, node, pattern)
        if match:
            return rewrite, match
        reasons.append(f"{rewrite.name}: {match.reason}")
    return None, reasons or [f"no sparse form for {type(pattern).__name__}"]


def sparse_attentions(graph: Graph) -> list[int]:
    return [n for n in graph.by_type("attention") if graph.op(n).attrs.get("pattern") is not None]


class SparsifyAttention(Pass):
    name = "sparsify_attention"
    description = "compute static sparse attention patterns without the dense scores"

    def rewrite(self, graph: Graph) -> PassResult:
        notes: dict[str, list[str]] = {}  # what happened -> the origins it happened at, in graph order
        changed = False
        for node in sparse_attentions(graph):
            op = graph.op(node)
            pattern, where = op.attrs["pattern"], op.origin or located(graph, node)
            rewrite, match = first_match(graph, node)
            if rewrite is None:
                note = f"{pattern.brief()} stays dense masked ({'; '.join(match)})"
            else:
                graph.replace(node, rewrite.op, attrs=dict(op.attrs, **match.bound["attrs"]), label=rewrite.label)
                note, changed = rewrite.describe(pattern, match), True
            notes.setdefault(note, []).append(where)
        if not notes:
            return PassResult(graph, False, ["nothing to do: no attention has a sparse pattern"])
        return PassResult(graph, changed, [f"{span(where)}: {note}" for note, where in notes.items()])

    def ensures(self, graph: Graph) -> None:
        for node in sparse_attentions(graph):
            rewrite, _ = first_match(graph, node)
            if rewrite is not None:
                raise ContractError(f"attention left dense where {rewrite.name} apply", graph.op(node).origin)
