"""Walking an ONNX graph with its subgraphs (`If` branches, `Loop` bodies): the lowering uses it
for the opsets its subgraphs need, the capability report (lower/targets.py) and `tfc inspect` to
count what was emitted, the precision pass (lower/convert_precision.py) to type and check every
graph, and the output naming (lower/to_onnx.py) to rename tensors everywhere they are read."""
from __future__ import annotations


def every_node(graph):
    """The nodes of an ONNX graph and of its subgraphs (`If` branches), depth first."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for sub in _subgraphs(attribute):
                yield from every_node(sub)


def graphs(graph):
    """An ONNX graph and its subgraphs (`If` branches, `Loop` bodies), nested ones included, each
    before the subgraphs of its nodes."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            for sub in _subgraphs(attribute):
                yield from graphs(sub)


def _subgraphs(attribute):
    return ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs)


def rename_inputs(nodes, renamed: dict[str, str]) -> None:
    """Point every input (subgraphs' too: they read outer tensors by name) at the tensor's new name."""
    for node in nodes:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        for attribute in node.attribute:
            for sub in _subgraphs(attribute):
                rename_inputs(sub.node, renamed)
