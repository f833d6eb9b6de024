"""The NumPy interpreter of the IR: the semantic reference that passes and lowering are checked
against. It runs every node in topological order with the op's NumPy semantics."""
from __future__ import annotations

import numpy as np

from .graph import Graph, Value
from .ops import op_def
from .types import concrete_shape, numpy_dtype


def evaluate(graph: Graph, feeds: dict[str, np.ndarray], weights: dict | None = None) -> dict[str, np.ndarray]:
    """Run the graph on named inputs; returns the named outputs. ``weights`` replaces the graph's
    own (arrays already drawn, say)."""
    weights = graph.weights if weights is None else weights
    values: dict[Value, np.ndarray] = {}
    for node in graph.topological():
        op = graph.op(node)
        if op.type == "input":
            name = op.attrs["name"]
            if name not in feeds and "default" not in op.attrs:
                raise KeyError(f"missing input {name!r}")
            results = [np.asarray(feeds.get(name, op.attrs.get("default")), dtype=op.attrs["dtype"])]
        elif op.type == "param":
            results = [np.asarray(weights[op.attrs["name"]])]  # draws a seeded weight
        else:
            args = [values[v] for v in graph.inputs_of(node)]
            with np.errstate(over="ignore"):  # two masks on one key overflow to -inf, then clip
                results = op_def(op.type).evaluate(op.attrs, *args)
        for port, result in enumerate(results):
            values[Value(node, port)] = result
    return {name: values[v] for name, v in graph.outputs.items()}


def random_feeds(graph: Graph, sizes: dict[str, int], seed: int = 0,
                 pad_last: int = 0) -> dict[str, np.ndarray]:
    """Random inputs for every graph input. Integer inputs named ``*ids`` draw in [0, vocab);
    masks are ones with the last ``pad_last`` positions of the first row padded."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for node in graph.graph_inputs():
        attrs = graph.op(node).attrs
        if "default" in attrs:
            continue
        shape = concrete_shape(attrs["shape"], sizes)
        dtype = numpy_dtype(attrs["dtype"])
        if attrs.get("role") == "padding_mask":
            mask = np.ones(shape, dtype)
            if pad_last:
                mask[0, -pad_last:] = 0
            feeds[attrs["name"]] = mask
        elif np.issubdtype(dtype, np.integer):
            feeds[attrs["name"]] = rng.integers(0, attrs.get("range", 2), size=shape).astype(dtype)
        else:
            feeds[attrs["name"]] = rng.standard_normal(shape).astype(dtype)
    return feeds
