"""The element type of every value of a lowered model, main graph and subgraphs, from onnx's type inference.

The precision pass (lower/convert_precision.py) asks which tensors are float, and its promise is
checked by asking whether every node's inputs agree with what its op takes: both are onnx's
``shape_inference.infer_shapes`` (strict off to type a graph, on to check one). The model's proto
holds no weight payloads, so the initializers are declared to it as typed inputs; inference types
`Loop` bodies and `If` branches, outer-scope values included.

onnx has no schemas for onnxruntime's contrib ops (domain com.microsoft), so their outputs, and
everything computed from them, stay untyped. Their outputs take the type of their first input (every
contrib op the lowering emits computes in the type of the activation it takes first), declared to
the next round of inference; rounds repeat until no contrib output is left to type: one per contrib
op on the longest chain of them, each a few milliseconds on a full-size model.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import onnx
from onnx import helper

from .walk import graphs


def value_types(proto: onnx.ModelProto, initializers: Iterable[tuple[str, object]],
                strict: bool = False) -> dict[str, int]:
    """{value name: TensorProto element type} over every graph of the model; `initializers` are
    (name, array or weight recipe) pairs. With `strict`, a node whose inputs its op does not take
    (onnx's type constraints) raises onnx's InferenceError naming the node."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    model.graph.input.extend(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(np.dtype(a.dtype)),
                                                           list(a.shape)) for name, a in initializers)
    while True:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=strict)
        types = {v.name: v.type.tensor_type.elem_type for g in graphs(inferred.graph)
                 for v in (*g.input, *g.value_info, *g.output) if v.type.tensor_type.elem_type}
        if not _declare_contrib_outputs(model.graph, types):
            return types


def _declare_contrib_outputs(graph: onnx.GraphProto, types: dict[str, int]) -> bool:
    """Type the untyped outputs of contrib ops whose first input is typed as it, in the graph that
    holds the op; whether there was one."""
    declared = False
    for g in graphs(graph):
        for node in g.node:
            if node.domain in ("", "ai.onnx") or not node.input or node.input[0] not in types:
                continue
            for output in node.output:
                if output and output not in types:
                    g.value_info.append(helper.make_tensor_value_info(output, types[node.input[0]], None))
                    declared = True
    return declared
