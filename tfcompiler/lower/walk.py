"""Walking an ONNX graph with its subgraphs (`If` branches, `Loop` bodies): the lowering uses it
for the opsets its subgraphs need, the capability report (lower/targets.py) and `tfc inspect` to
count what was emitted."""
from __future__ import annotations


def every_node(graph):
    """The nodes of an ONNX graph and of its subgraphs (`If` branches), depth first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from every_node(sub)
