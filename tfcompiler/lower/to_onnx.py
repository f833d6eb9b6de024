"""IR graph -> ONNX ModelProto: inputs with the Hugging Face axis names as dim_params, params as
initializers under their canonical names, one emitter call per node in a deterministic topological
order, and metadata (tfcompiler version, spec sha256, I/O roles)."""
from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import helper

from ..ir.graph import Graph, Value
from ..ir.ops.token_chunks import chunk_region
from ..limits import out_of_memory_at
from ..version import __version__
from .common import ONNX_DTYPES
from .emit import Emitter
from .registry import emit_op
from .runtime_opset import newest_runtime_opset
from .serialize import LoweredModel
from .targets import kernels_for
from .token_chunks import emit_token_chunks, runs_whole
from .walk import every_node, rename_inputs

# kernels that name graph outputs themselves (no Identity after them): GroupQueryAttention's present
# must be the caller's bound buffer for its in-place append (tfcompiler.cache_buffer)
WRITES_OUTPUTS = {"GroupQueryAttention"}

MIN_OPSET, MAX_OPSET = 17, 24


def default_opset() -> int:
    """--opset's default: the newest opset in MIN_OPSET..MAX_OPSET the installed onnxruntime runs."""
    return newest_runtime_opset(MIN_OPSET, MAX_OPSET)


def _value_info(name: str, tensor_type) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, ONNX_DTYPES[tensor_type.dtype], list(tensor_type.shape))


def to_onnx(graph: Graph, opset: int | None = None, metadata: dict[str, str] | None = None,
            target: str = "portable", kernels: frozenset[str] | None = None,
            precision: str = "fp32") -> LoweredModel:
    """The fp32 model, emitted for `precision` (the precision pass, lower/convert_precision.py,
    retypes it after); `kernels` overrides the target's choice from the capability table (tests use
    it to check the kernels the table skips); `opset` None: default_opset()."""
    opset = default_opset() if opset is None else opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is outside the supported {MIN_OPSET}..{MAX_OPSET}")
    decoding = graph.metadata.get("no_cache") == ""  # a decoder with a KV cache: its steps are one token each
    e = Emitter(opset, kernels_for(target, precision=precision, decoding=decoding) if kernels is None else kernels,
                graph.metadata.get("max_length"), precision)
    names: dict[Value, str] = {}
    inputs, roles, ranges = [], {}, {}
    regions = {node: chunk_region(graph, node) for node in graph.by_type("chunks_end")}
    in_chunks = set().union(*regions.values())

    def lower(node):
        op = graph.op(node)
        e.origin = op.origin
        if op.type == "constant":
            names[Value(node, 0)] = e.initializer(op.attrs["value"], e.scope_name(op.label or "Constant"))
            return
        args = graph.inputs_of(node)
        if op.type == "chunks_end":  # the region between it and its begin, as a Loop over token blocks
            begin = args[1]
            chunk = graph.op(begin.node).attrs["chunk"]
            reason = runs_whole([graph.op(n) for n in regions[node]])
            if reason:
                e.miss("TokenChunks", reason)
                outputs = [lower_region(regions[node], begin, names[begin], args[0])]
            else:
                outputs = [emit_token_chunks(e, names[begin], graph.type_of(begin).rank, chunk,
                                             lambda block: lower_region(regions[node], begin, block, args[0]))]
        else:
            outputs = emit_op(e, op, [names[v] for v in args], [graph.type_of(v) for v in args], op.label)
        for port, out in enumerate(outputs):
            names[Value(node, port)] = out

    def lower_region(region, begin, block, output):
        outer, origin = names[begin], e.origin
        names[begin] = block
        for node in order:
            if node in region:
                lower(node)
        names[begin], e.origin = outer, origin
        return names[output]

    def lower_all(order):
        """Every node, in order: inputs and weights by name, the rest through `lower`."""
        for node in order:
            op = graph.op(node)
            value = Value(node, 0)
            if op.type == "input":
                names[value] = op.attrs["name"]
                inputs.append(_value_info(op.attrs["name"], op.outputs[0]))
                roles[op.attrs["name"]] = op.attrs.get("role", "")
                if "range" in op.attrs:  # an integer input's values: [0, range) (ids, segments, positions)
                    ranges[op.attrs["name"]] = op.attrs["range"]
                if "default" in op.attrs:  # an initializer of its name: onnxruntime's value when the caller gives none
                    e.initializers.append((op.attrs["name"], np.asarray(op.attrs["default"], dtype=op.attrs["dtype"])))
            elif op.type == "param":
                names[value] = e.initializer(graph.weights[op.attrs["name"]], op.attrs["name"])
            elif node not in in_chunks:
                lower(node)

    order = graph.topological()
    with out_of_memory_at(lambda: e.origin, "lowering"):
        lower_all(order)
    outputs = []
    producers = {out: node for node in e.nodes for out in node.output}
    renamed = {}
    for name, value in graph.outputs.items():
        tensor = names[value]
        writer = producers.get(tensor)
        if writer is not None and writer.op_type in WRITES_OUTPUTS and tensor not in renamed:
            writer.output[list(writer.output).index(tensor)] = renamed[tensor] = name
        else:
            e.origin = ""
            e.node("Identity", [renamed.get(tensor, tensor)], outputs=[name], label=f"output/{name}")
        outputs.append(_value_info(name, graph.type_of(value)))
        roles[name] = "output"
    rename_inputs(e.nodes, renamed)
    model = onnx.ModelProto(producer_name="tfcompiler", producer_version=__version__)
    model.opset_import.append(helper.make_opsetid("", opset))
    model.graph.node.extend(e.nodes)
    for domain in sorted({node.domain for node in every_node(model.graph) if node.domain}):  # subgraphs' too
        model.opset_import.append(helper.make_opsetid(domain, 1))
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    model.graph.name = graph.metadata.get("name", "tfcompiler")
    model.graph.input.extend(inputs)
    model.graph.output.extend(outputs)
    props = {"tfcompiler.version": __version__, "tfcompiler.io_roles": json.dumps(roles, sort_keys=True),
             **({"tfcompiler.io_ranges": json.dumps(ranges, sort_keys=True)} if ranges else {}),
             "tfcompiler.target": target}
    presents = [name for name in graph.outputs if name.startswith("present.")]
    if presents and set(presents) <= set(renamed.values()):  # every one written by a kernel that can append
        props["tfcompiler.cache_buffer"] = "shared"  # in place, into a buffer the caller binds as past and present
    props.update(metadata or {})
    helper.set_model_props(model, props)
    return LoweredModel(model, e.initializers, dict(e.missed), frozenset(e.masks))

