"""What `tfc inspect` reports: parameters, FLOPs per token, op histogram and I/O, for a spec (from
its IR) or a compiled model (from the ONNX file, without loading external weight data)."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .ir.types import concrete_shape
from .lower.walk import every_node

__all__ = ["every_node", "format_report", "inspect_model", "inspect_path", "inspect_spec"]


def inspect_spec(path: str, sequence: int) -> dict:
    from .builders import build_graph
    from .builders.weights import declared_params
    from .language import load_spec

    spec = load_spec(path)
    graph = build_graph(spec)
    params = sum(int(np.prod(shape)) for shape, _ in declared_params(graph).values())
    memory = max((stack.memory for _, stack, _ in spec.stacks()), default=0)  # segment recurrence: full memory
    compressed = max((stack.compressed_memory.length for _, stack, _ in spec.stacks() if stack.compressed_memory),
                     default=0)
    sizes = {"batch_size": 1, "sequence_length": sequence, "decoder_sequence_length": sequence,
             "past_memory_length": memory, "past_compressed_length": compressed,
             "past_pending_length": 0,
             "sentences": 1, "sentence_length": sequence,  # documents: one sentence
             "frames": sequence}  # speech: `sequence` frames, fewer states after subsampling
    flops = 0
    for node in graph.by_type("matmul"):
        (out,) = graph.op(node).outputs
        inner = concrete_shape(graph.type_of(graph.inputs_of(node)[0]).shape[-1:], sizes)[0]
        flops += 2 * int(np.prod(concrete_shape(out.shape, sizes))) * inner
    for node in graph.by_type("conv"):  # each output takes C·k multiply-adds (speech frames' subsampling)
        (out,) = graph.op(node).outputs
        weight = graph.type_of(graph.inputs_of(node)[1]).shape
        flops += 2 * int(np.prod(concrete_shape(out.shape, sizes))) * int(np.prod(weight[1:]))
    for node in graph.by_type("attention"):  # scores q·kᵀ and the weighted sum of values
        q, k, v = (graph.type_of(x) for x in graph.inputs_of(node)[:3])
        batch, heads, s, dh = concrete_shape(q.shape, sizes)
        t = concrete_shape(k.shape, sizes)[2]
        flops += 2 * batch * heads * s * t * (dh + concrete_shape(v.shape, sizes)[3])
    tokens = sequence * len([name for name, _, _ in spec.stacks() if name != "document"])
    return {"name": spec.name, "topology": spec.topology, "parameters": params,
            "flops_per_token": flops / tokens, "at_sequence_length": sequence,
            **({"with_memory_length": memory} if memory else {}),
            "ops": dict(sorted(Counter(graph.op(n).type for n in graph.nodes()).items())),
            "inputs": {graph.op(n).attrs["name"]: str(graph.op(n).outputs[0]) for n in graph.graph_inputs()},
            "outputs": {name: str(graph.type_of(v)) for name, v in graph.outputs.items()}}


def inspect_model(path: str) -> dict:
    import onnx

    model = onnx.load_model(path, load_external_data=False)

    def describe(value):
        t = value.type.tensor_type
        dims = [d.dim_param or d.dim_value for d in t.shape.dim]
        return f"{onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)}{dims}"

    return {"opset": [f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import],
            "ir_version": model.ir_version,
            "parameters": sum(int(np.prod(t.dims)) for t in model.graph.initializer),
            "stored_bytes": sum(_stored_bytes(t) for t in model.graph.initializer),
            "weight_flops_per_token": _weight_flops(model),
            "ops": dict(sorted(Counter(n.op_type for n in every_node(model.graph)).items())),
            "inputs": {v.name: describe(v) for v in model.graph.input},
            "outputs": {v.name: describe(v) for v in model.graph.output},
            "metadata": {p.key: p.value for p in model.metadata_props}}


def _stored_bytes(tensor) -> int:
    """What an initializer takes in the file: its element count times its type's width (4-bit types
    pack two to a byte)."""
    import onnx

    count = int(np.prod(tensor.dims))
    if tensor.data_type in (onnx.TensorProto.INT4, onnx.TensorProto.UINT4):
        return (count + 1) // 2
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize


def _weight_flops(model) -> int:
    """2·K·N per token for every MatMul by a (K, N) weight, directly or through a Transpose (a tied
    head) or a DequantizeLinear (int4 on standard ops), and for the quantized ones (MatMulInteger,
    DynamicQuantizeMatMul: (K, N) int8; MatMulNBits: its K and N attributes). Attention scores depend on
    the sequence length and are not counted here."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for node in model.graph.node:  # a weight's transpose (a tied head) or dequantized copy (int4)
        if node.op_type in ("Transpose", "DequantizeLinear") and len(shapes.get(node.input[0], ())) == 2:
            shapes[node.output[0]] = shapes[node.input[0]][::-1 if node.op_type == "Transpose" else 1]
    flops = 0
    for node in model.graph.node:
        if node.op_type in ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul") and \
                len(shapes.get(node.input[1], ())) == 2:
            k, n = shapes[node.input[1]]
            flops += 2 * k * n
        elif node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            flops += 2 * attrs["K"] * attrs["N"]
    return flops


def inspect_path(path: str, sequence: int = 128) -> dict:
    return inspect_model(path) if Path(path).suffix == ".onnx" else inspect_spec(path, sequence)


def format_report(report: dict) -> str:
    lines = []
    for key, value in report.items():
        if isinstance(value, dict):
            lines.append(f"{key}:")
            for k, v in value.items():
                lines.append(f"  {k}: {json.loads(v) if k.endswith('io_roles') else v}")
        elif key == "parameters":
            lines.append(f"{key}: {value:,} ({value * 4 / 2**20:.1f} MiB in fp32)")
        elif key == "stored_bytes":
            lines.append(f"stored: {value / 2**20:.1f} MiB")
        elif key in ("flops_per_token", "weight_flops_per_token"):
            lines.append(f"{key}: {value / 1e6:,.1f} MFLOP")
        else:
            lines.append(f"{key}: {value}")
    return "\n".join(lines)
