"""The precision pass (`tfc compile --dtype fp16|bf16`): the lowered fp32 ONNX model computed in fp16 or bf16.

It runs after lowering, on the ONNX model (the IR passes run before it, on the IR), with the IR passes'
contract (passes/base.py): ``run(model) -> ModelPassResult(model, changed, notes)``, ``requires`` (the
model is fp32: no fp16 or bf16 tensor yet) and ``ensures`` (onnx's type inference, strict, accepts
every graph and subgraph: each node's inputs are types its op takes; the inputs of onnxruntime's
contrib ops, which onnx has no schema for, agree; every weight is converted and a mask left fp32
feeds only fp32 work; the inputs and outputs have the policy's type). Like onnx-ir's float16
conversion it has
- a **block list**, as data: the op types kept in fp32, each with its reason (``BLOCKED`` and the
  target's provider's fp32-only kernels, ``targets.fp32_only``), besides the ops whose schema lacks
  the low type at the model's opset (found per op, the reason given the same way);
- **I/O types kept** per policy: fp16 models take and give fp16; bf16 models take and give fp32,
  since numpy and onnxruntime's Python API have no bfloat16 arrays;
- **subgraphs recursed**: Loop bodies and If branches are retyped with their outer graph.
A region that must stay fp32 is declared in the lowered graph by an explicit Cast to fp32 (made by
``Emitter.fp32``, which the IR's ``keep_fp32`` lowers to): the pass keeps that Cast and computes
its users in fp32. The retyping itself is lower/precision.py.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto

from ..passes.base import ContractError
from ..passes.report import PassRecord, PipelineReport
from .precision import TENSOR_TYPES, retyper
from .precision_numerics import check_precision_numerics
from .serialize import LoweredModel
from .value_types import value_types
from .walk import every_node, graphs

# op type -> why it stays fp32 in every low-precision model. A running total of positive terms
# outgrows fp16's precision: past 4096 its step is 4, so terms under 2 vanish
BLOCKED = {"CumSum": "a running sum along the sequence, which outgrows the low precision's step: kept fp32"}
PROVIDER_FP32_ONLY = "the target's provider has no kernel for it: computed in fp32"
LOW_TYPES = (TensorProto.FLOAT16, TensorProto.BFLOAT16)
FLOATS = (TensorProto.FLOAT, *LOW_TYPES)


@dataclass
class ModelPassResult:
    model: LoweredModel
    changed: bool
    notes: list[str] = field(default_factory=list)


class ConvertPrecision:
    name = "convert_precision"
    description = "compute the lowered fp32 model in fp16 or bf16"

    def __init__(self, precision: str, weights: set[str], fp32_only: frozenset[str] = frozenset()):
        self.precision, self.weights = precision, set(weights)
        self.low_type = TENSOR_TYPES[precision]
        self.low_io = precision == "fp16"  # bf16: numpy has no bfloat16 arrays for the caller to feed
        self.blocked = {op: PROVIDER_FP32_ONLY for op in sorted(fp32_only)} | BLOCKED

    def run(self, model: LoweredModel) -> ModelPassResult:
        self.requires(model)
        retyping = retyper(model, self.precision, self.weights, self.blocked, self.low_io)
        low = retyping.model(model)
        self.ensures(low)
        p, computed, inserted = self.precision, retyping.computed, retyping.inserted
        notes = [f"{computed['low']} node(s) compute in {p}, {computed['wide']} in fp32; "
                 f"{inserted['low']} Cast(s) to {p} and {inserted['wide']} to fp32 inserted, "
                 f"{len(retyping.low_copies)} constant(s) copied to {p}",
                 f"inputs and outputs in {p if self.low_io else 'fp32'}; {retyping.fp32_casts} fp32 region(s) "
                 "declared by the lowering (Emitter.fp32, keep_fp32) kept"]
        notes += [f"kept fp32: {count} {op} ({why})" for (op, why), count in sorted(retyping.kept.items())]
        return ModelPassResult(low, True, notes)

    def requires(self, model: LoweredModel) -> None:
        """The model is fp32: no input, initializer, declared value, Cast or constant of a low type."""
        for name, array in model.initializers:
            if np.dtype(array.dtype).name in ("float16", "bfloat16"):
                raise ContractError(f"{self.name} requires an fp32 model: initializer {name} is {array.dtype}")
        for graph in graphs(model.proto.graph):
            for value in (*graph.input, *graph.output, *graph.value_info):
                if value.type.tensor_type.elem_type in LOW_TYPES:
                    raise ContractError(f"{self.name} requires an fp32 model: {value.name} is "
                                        f"{TensorProto.DataType.Name(value.type.tensor_type.elem_type)}")
            for node in graph.node:
                for attribute in node.attribute:
                    if (attribute.name == "to" and attribute.i in LOW_TYPES
                            or attribute.type == onnx.AttributeProto.TENSOR and attribute.t.data_type in LOW_TYPES):
                        raise ContractError(f"{self.name} requires an fp32 model: {node.op_type} {node.name} "
                                            "makes a low-precision tensor")

    def ensures(self, model: LoweredModel) -> None:
        """Every node's float inputs are types its op takes, weights are converted, fp32 masks feed
        fp32 work only, and the float inputs and outputs have the policy's type."""
        try:
            types = value_types(model.proto, model.initializers, strict=True)
        except onnx.shape_inference.InferenceError as error:
            raise ContractError(f"{self.name} left a node whose inputs its op does not take: {error}") from None
        fp32_masks = {name for name, array in model.initializers
                      if name in model.masks and np.dtype(array.dtype) == np.float32}
        for graph in graphs(model.proto.graph):
            for node in graph.node:
                floats = {types[name] for name in node.input if types.get(name) in FLOATS}
                if node.domain not in ("", "ai.onnx") and len(floats) > 1:  # onnx cannot check these
                    raise ContractError(f"{self.name} left {node.op_type} {node.name} with inputs of "
                                        f"{len(floats)} float types")
                if fp32_masks.intersection(node.input) and any(types.get(o) in LOW_TYPES for o in node.output):
                    raise ContractError(f"{self.name} left an fp32 mask feeding {node.op_type} {node.name}, "
                                        "which computes in the low precision")
        for name, array in model.initializers:
            if name in self.weights and np.dtype(array.dtype) == np.float32:
                raise ContractError(f"{self.name} left weight {name} in fp32")
        io = self.low_type if self.low_io else TensorProto.FLOAT
        for value in (*model.proto.graph.input, *model.proto.graph.output):
            have = value.type.tensor_type.elem_type
            if have in FLOATS and have != io:
                raise ContractError(f"{self.name} left {value.name} {TensorProto.DataType.Name(have)}, "
                                    f"not {TensorProto.DataType.Name(io)}")


def convert_precision(model: LoweredModel, precision: str, weights: set[str], fp32_only: frozenset[str],
                      report: PipelineReport, dump_after: set[str] = frozenset(),
                      check_sizes: dict[str, int] | None = None) -> LoweredModel:
    """Run the pass as the pipeline runs the IR passes: its record (notes, node counts over every
    graph, time) joins ``report`` for --explain, its ONNX text joins the dumps when ``dump_after``
    names it, and with ``check_sizes`` (--verify) the models before and after run on those sizes."""
    p = ConvertPrecision(precision, weights, fp32_only)
    start = time.perf_counter()
    result = p.run(model)
    seconds = time.perf_counter() - start
    if check_sizes is not None:
        result.notes.append(check_precision_numerics(p.name, model, result.model, precision, check_sizes))
    nodes = [sum(1 for _ in every_node(m.proto.graph)) for m in (model, result.model)]
    report.records.append(PassRecord(p.name, result.changed, result.notes, seconds, *nodes))
    if p.name in dump_after or "all" in dump_after:
        report.dumps[p.name] = onnx.printer.to_text(result.model.proto.graph)
    return result.model

