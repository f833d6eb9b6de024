"""Pack the linear projections that read the same input into one MatMul (the query, key and value
projections of an attention; the gate and up projections of a gated FFN):

    x ─ matmul(Wq) ─ add(bq) ─ q                x ─ matmul([Wq|Wk|Wv]) ─ add([bq|bk|bv]) ─ split ─ q
    x ─ matmul(Wk) ─ add(bk) ─ k       =>                                                    ├─ k
    x ─ matmul(Wv) ─ add(bv) ─ v                                                             └─ v

One GEMM with N = the sum of the widths reads x once and keeps its tiles full, where three narrow
ones would each pack x again. The packed weight is concatenated when the model is written (a
weight recipe, no Concat at run time); biases are packed too when every projection has one.
Projections whose weights are not params, or that share no input, stay as they are.

The split copies its pieces, so a packed group holds one more copy of its outputs while it splits.
In a model whose inputs reach LONG_FROM tokens that copy is a long activation (4096 tokens, width
256: linear attention's peak 27 -> 43 MiB with Q/K/V packed), and packing measured no faster on
CPU (BERT-base: even at 1 and 128 tokens, 1.9% slower at 512), so such models pack only inside
token chunks (tfcompiler.ir.ops.token_chunks), where the copy is one chunk's. A decoder with a KV
cache packs whatever its length: its generation steps read each weight once per token, and a packed
group is one matrix-vector product where three small ones each paid their threads' start (llama-style
decoding: the key and value projections are 512 x 128), while generation reads long prompts in chunks
(tfc_runtime's generator: 512 tokens at a time), so no activation is long.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.ops.token_chunks import chunk_region
from ..ir.recipes import Recipe
from ..lengths import LONG_FROM
from .base import ContractError, Pass, PassResult
from .eliminate_common_subexpressions import duplicates
from .report import span


@dataclass(frozen=True)
class PackedWeight(Recipe):
    """The concatenation of weights (arrays or recipes) along `axis`, made when an array is needed."""

    parts: tuple
    axis: int
    shape: tuple[int, ...]
    dtype = np.dtype(np.float32)

    def __array__(self, dtype=None, copy=None):
        out = np.concatenate([np.asarray(p, dtype=np.float32) for p in self.parts], axis=self.axis)
        return out if dtype is None else out.astype(dtype)


class PackProjections(Pass):
    name = "pack_projections"
    description = "one MatMul for the projections that share an input"
    after = {"eliminate_common_subexpressions": "projections group by the value they read, and equal values "
                                                "are one value only once merged"}
    before = {"eliminate_dead_code": "the unpacked weights are left dead for it"}

    def rewrite(self, graph: Graph) -> PassResult:
        notes, packed, left = [], {}, 0
        for group, keep in list(groups(graph)):
            if all(m in graph.nx_graph for m, _ in group):
                if keep:
                    left += 1
                else:
                    notes.append(pack(graph, group, packed))
        kept = [f"left {left} group(s) unpacked: inputs reach {graph.metadata['max_length']} tokens (from "
                f"{LONG_FROM} a packed group's split holds one more long activation)"] if left else []
        if not notes:
            return PassResult(graph, False, kept or ["nothing to pack: no input feeds two or more weight projections"])
        kinds = {what: [origin for origin, w in notes if w == what] for what in dict.fromkeys(w for _, w in notes)}
        return PassResult(graph, True, [f"packed {len(notes)} group(s) of projections: "
                                        + "; ".join(f"{what} at {span(at)}" for what, at in kinds.items())] + kept)

    def requires(self, graph: Graph) -> None:
        """Equal values that feed projections are one value (CSE's promise), or their groups would split."""
        readers = [n for n in graph.topological() if any(projections_of(graph, Value(n, p))
                                                          for p in range(len(graph.op(n).outputs)))]
        for first, later in duplicates(graph, readers):
            raise ContractError(f"{graph.op(later).type} feeds weight projections and computes the same value as "
                                f"node {first}: merge equal values first", graph.op(later).origin)

    def ensures(self, graph: Graph) -> None:
        for group, keep in groups(graph):
            if not keep:
                raise ContractError(f"{len(group)} projections still read one input", graph.op(group[0][0]).origin)


def groups(graph: Graph):
    """(group, keep) for every value read by two or more weight projections: the group as
    projections_of gives it; keep when the model's inputs reach LONG_FROM tokens outside token chunks."""
    long = graph.metadata.get("max_length", 0) >= LONG_FROM and graph.metadata.get("no_cache") != ""
    chunked = set().union(*(chunk_region(graph, end) | {graph.inputs_of(end)[1].node}
                            for end in graph.by_type("chunks_end")))
    for node in graph.topological():
        for port in range(len(graph.op(node).outputs)):
            group = projections_of(graph, Value(node, port))
            if len(group) >= 2:
                yield group, long and node not in chunked


def _param(graph: Graph, value: Value, rank: int):
    op = graph.op(value.node)
    return op if op.type == "param" and len(op.attrs["shape"]) == rank else None


def projections_of(graph: Graph, x: Value) -> list[tuple[int, int | None]]:
    """(matmul, its bias add or None) for every x @ W with W a 2-D param, in creation order."""
    group = []
    for user, index in graph.users(x):
        op = graph.op(user)
        if op.type != "matmul" or index != 0 or _param(graph, graph.inputs_of(user)[1], 2) is None:
            continue
        users = graph.users(Value(user, 0))
        bias = None
        if len(users) == 1 and graph.op(users[0][0]).type == "add" and not any(
                v == Value(user, 0) for v in graph.outputs.values()):
            other = [v for v in graph.inputs_of(users[0][0]) if v != Value(user, 0)]
            if len(other) == 1 and _param(graph, other[0], 1) is not None:
                bias = users[0][0]
        group.append((user, bias))
    return sorted(group)


def packed_param(graph: Graph, params: list[Value], axis: int, origin: str, made: dict) -> Value:
    """One param for the concatenation, made once for the same weights (layers can share them)."""
    if tuple(params) in made:
        return made[tuple(params)]
    ops = [graph.op(p.node) for p in params]
    shape = list(ops[0].attrs["shape"])
    shape[axis] = sum(op.attrs["shape"][axis] for op in ops)
    name = "+".join(op.attrs["name"] for op in ops)
    parts = [graph.weights.get(op.attrs["name"]) for op in ops]
    if all(part is not None for part in parts):  # (a graph built for its structure alone has no weights)
        graph.weights[name] = PackedWeight(tuple(parts), axis, tuple(shape))
    made[tuple(params)] = graph.add1("param", (), dict(name=name, dtype="float32", shape=tuple(shape), init="packed"),
                                     origin=origin)
    return made[tuple(params)]


def pack(graph: Graph, group: list[tuple[int, int | None]], made: dict) -> tuple[str, str]:
    """Pack one group; returns (its origin, what it packed)."""
    matmuls = [m for m, _ in group]
    x = graph.inputs_of(matmuls[0])[0]
    weights = [graph.inputs_of(m)[1] for m in matmuls]
    widths = [graph.op(w.node).attrs["shape"][1] for w in weights]
    origin = graph.op(matmuls[0]).origin
    packed = graph.add1("matmul", (x, packed_param(graph, weights, 1, origin, made)), origin=origin,
                        label="PackedMatMul")
    with_bias = all(bias is not None for _, bias in group)
    ends = [bias if with_bias else m for m, bias in group]
    if with_bias:
        biases = [next(v for v in graph.inputs_of(b) if v.node != m) for m, b in group]
        packed = graph.add1("add", (packed, packed_param(graph, biases, 0, origin, made)), origin=origin,
                            label="PackedBias")
    rank = graph.type_of(packed).rank
    pieces = graph.add("split", (packed,), dict(axis=rank - 1, sizes=tuple(widths)), origin=origin,
                       label="SplitProjections")
    for end, piece in zip(ends, pieces):
        graph.replace_all_uses(Value(end, 0), piece)
    for m, bias in group:  # the originals are unused now; dead-code elimination drops their params
        if with_bias:
            graph.remove(bias)
        graph.remove(m)
    names = [graph.op(w.node).attrs["name"].rsplit(".", 2)[-2] for w in weights]
    return origin, f"{'+'.join(names)} ({sum(widths)} columns{', with biases' if with_bias else ''})"
