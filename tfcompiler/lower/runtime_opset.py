"""The default opset: the newest that tfcompiler emits and the installed onnxruntime runs.

A newer opset lets more of the graph lower to fused standard ops (Gelu from 20; Attention,
RMSNormalization and RotaryEmbedding from 23), so compiling at the runtime's newest opset gives the
fastest model a user can run here. onnxruntime stamps no opset number on itself, and it loads a model
stamped past what it implements as long as no op lacks a kernel, so the check is direct: the newest
opset at which a session accepts a small model made of those ops. Asked once per process; a given
onnxruntime always gives the same answer, so compiles stay byte-identical on one install.
"""
from __future__ import annotations

import functools

import onnx
from onnx import TensorProto, helper

# the ops whose kernels decide whether an opset pays: each first standardised at the given opset
NEWEST_OPS = {"Gelu": 20, "Attention": 23, "RMSNormalization": 23, "RotaryEmbedding": 23}


def probe_model(opset: int) -> bytes:
    """A model of the fused ops opset `opset` has, over one (batch, heads, sequence, head size) activation."""
    shape = [1, 2, 4, 8]
    nodes, inputs = [], [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
    initializers = [helper.make_tensor("scale", TensorProto.FLOAT, [8], [1.0] * 8)]
    if opset >= NEWEST_OPS["Gelu"]:
        nodes.append(helper.make_node("Gelu", ["x"], ["gelu"]))
    if opset >= NEWEST_OPS["Attention"]:
        inputs.append(helper.make_tensor_value_info("positions", TensorProto.INT64, [1, 4]))
        initializers += [helper.make_tensor(name, TensorProto.FLOAT, [4, 4], [0.5] * 16) for name in ("cos", "sin")]
        nodes += [helper.make_node("RMSNormalization", ["x", "scale"], ["normed"]),
                  helper.make_node("RotaryEmbedding", ["normed", "cos", "sin", "positions"], ["rotated"]),
                  helper.make_node("Attention", ["rotated", "rotated", "x"], ["attended"], is_causal=1)]
    nodes = nodes or [helper.make_node("Identity", ["x"], ["y"])]
    outputs = [helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, shape) for node in nodes]
    graph = helper.make_graph(nodes, "opset_probe", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                             ir_version=min(onnx.IR_VERSION, 10)).SerializeToString()


@functools.cache
def newest_runtime_opset(lowest: int, highest: int) -> int:
    """The newest opset in lowest..highest whose fused ops the installed onnxruntime's CPU provider runs;
    `lowest` when it runs none of them."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # a refused probe is an answer, not a warning for the user
    for opset in range(highest, lowest, -1):
        try:
            ort.InferenceSession(probe_model(opset), options, providers=["CPUExecutionProvider"])
            return opset
        except Exception:  # noqa: BLE001 - any refusal (no kernel, unknown opset) means: not this one
            continue
    return lowest
