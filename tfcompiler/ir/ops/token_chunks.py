"""Token chunks: a position-wise region (the FFN) marked to run over blocks of `chunk` tokens one
after another, so its hidden activations never exceed one block's (Reformer's chunked feed-forward,
Hugging Face's `chunk_size_feed_forward`):

    x ─ chunks_begin ─ (position-wise ops: matmuls by weights, bias adds, activations) ─ y ─ chunks_end ─ out
                  └────────────────────────────────────────────────────────────────────────┘

Both ops are identities here (the math does not change); chunks_end's second input points back at
its chunks_begin, so the region stays a data-flow fact that passes keep: the nodes between the two.
The lowering (tfcompiler.lower.token_chunks) emits the region once, as the body of a `Loop` over
token blocks. The region reads nothing from outside but its begin and static values (weights,
constants and what is computed from them only), and nothing outside reads it but its end.
"""
from __future__ import annotations

import networkx as nx

from .registry import OpTypeError, register


def _begin_infer(attrs, types):
    if attrs["chunk"] < 1 or types[0].rank < 2:
        raise OpTypeError(f"chunks_begin needs chunk >= 1 and tokens on axis 1, got {attrs['chunk']}, {types[0]}")
    return [types[0]]


def _end_infer(attrs, types):
    output, begin = types
    if output.rank != begin.rank or output.shape[:2] != begin.shape[:2]:
        raise OpTypeError(f"chunks_end: the region's output {output} is not position-wise in its input {begin}")
    return [output]


register("chunks_begin", (1, 1), _begin_infer, lambda attrs, x: [x])
register("chunks_end", (2, 2), _end_infer, lambda attrs, y, begin: [y])


def chunk_region(graph, end: int) -> set[int]:
    """The nodes between the chunks_end node `end` and its chunks_begin; a ValueError if the region
    reads or leaks a value it must not (see the module docstring)."""
    begin = graph.inputs_of(end)[1].node
    if graph.op(begin).type != "chunks_begin":
        raise ValueError(f"chunks_end {end} does not point at a chunks_begin")
    g = graph.nx_graph
    output = graph.inputs_of(end)[0].node
    region = nx.descendants(g, begin) & (nx.ancestors(g, output) | {output})
    for node in region:
        for value in graph.inputs_of(node):
            source = value.node
            if source != begin and source not in region and _dynamic(graph, source):
                raise ValueError(f"node {node} ({graph.op(node).type}) in the token chunks of {end} reads {source} "
                                 f"({graph.op(source).type}), a value computed outside them from the inputs")
        for user in g.successors(node):
            if user not in region and user != end:
                raise ValueError(f"node {node} ({graph.op(node).type}) in the token chunks of {end} is read "
                                 f"outside them by {user} ({graph.op(user).type})")
    return region


def _dynamic(graph, node: int) -> bool:
    """Whether the value depends on a graph input (static values may be read from any loop body)."""
    return any(graph.op(n).type == "input" for n in nx.ancestors(graph.nx_graph, node) | {node})
