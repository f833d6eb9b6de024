"""Quantize the weights of the linear maps to int8 (`tfc compile --quantize int8`):

    x ─ matmul(W)            =>      x ─ quantized_matmul(round(W / s), s)

W (K, N) float32 becomes int8 with one scale per output column, s = max|W[:, n]| / 63: seven bits
of magnitude, because onnxruntime's u8s8 GEMM on AVX2 processors without VNNI adds pairs of
products in 16 bits, which saturate with full-range weights. The activations are quantized at run
time, per tensor (quantized_matmul). Every matmul whose right operand is a 2-D float param, or the
transpose of one (a LM head tied to the token embedding: the int8 copy is of the transpose, the
embedding itself stays fp32), is quantized; embeddings, norms and attention scores stay fp32.

This pass changes the numbers on purpose: the pipeline checks it against the unquantized IR with
an accuracy budget (relative RMS error of every output at most `budget`) instead of equality, and
--explain prints the deviation it measured.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Value
from ..ir.recipes import Recipe
from .base import Pass, PassResult

LEVELS = 63  # the largest quantized magnitude


@dataclass(frozen=True)
class QuantizedWeight(Recipe):
    """int8 values (part "values") or float32 column scales (part "scales") of a weight (an array or
    a recipe), computed when an array is needed."""

    weight: object
    part: str
    shape: tuple[int, ...]
    transposed: bool = False

    @property
    def dtype(self):
        return np.dtype(np.int8 if self.part == "values" else np.float32)

    def __array__(self, dtype=None, copy=None):
        weight = np.asarray(self.weight, dtype=np.float32)
        values, scales = quantize(weight.T if self.transposed else weight)
        out = values if self.part == "values" else scales
        return out if dtype is None else out.astype(dtype)


def quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales per column) with weight ≈ values · scales."""
    scales = np.abs(weight).max(axis=0) / LEVELS
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    values = np.clip(np.rint(weight / scales), -LEVELS, LEVELS).astype(np.int8)
    return values, scales


class QuantizeWeights(Pass):
    name = "quantize_weights"
    description = "int8 weights for the linear maps, activations quantized at run time"
    budget = 0.1  # relative RMS error of the outputs that the pipeline accepts (a broken rewrite moves them ~100%)

    def run(self, graph: Graph) -> PassResult:
        count, saved = 0, 0
        for node in graph.by_type("matmul"):
            x, w = graph.inputs_of(node)
            op, transposed = graph.op(w.node), False
            if op.type == "transpose" and tuple(op.attrs["perm"]) == (1, 0):
                op, transposed = graph.op(graph.inputs_of(w.node)[0].node), True
            if op.type != "param" or len(op.attrs["shape"]) != 2 or op.attrs["dtype"] != "float32":
                continue
            name, shape = op.attrs["name"], tuple(op.attrs["shape"])[::-1 if transposed else 1]
            weight = graph.weights.get(name)
            params = []
            suffix = ".T" if transposed else ""
            for part, dtype, part_shape in (("values", "int8", shape), ("scales", "float32", shape[1:])):
                part_name = f"{name}{suffix}.int8" if part == "values" else f"{name}{suffix}.scale"
                if weight is not None:
                    graph.weights[part_name] = QuantizedWeight(weight, part, part_shape, transposed)
                params.append(graph.add1("param", (), dict(name=part_name, dtype=dtype, shape=part_shape,
                                                           init="quantized"), origin=op.origin))
            out = graph.add1("quantized_matmul", (x, *params), origin=graph.op(node).origin,
                             label=graph.op(node).label or "QuantizedMatMul")
            graph.replace_all_uses(Value(node, 0), out)
            graph.remove(node)
            count += 1
            saved += 3 * int(np.prod(shape)) - 4 * shape[1]
        if not count:
            return PassResult(graph, False, ["nothing to quantize: no matmul has a 2-D weight"])
        return PassResult(graph, True, [f"quantized {count} linear map(s) to int8 weights with a scale per "
                                        f"column: {saved / 2 ** 20:.1f} MiB less weight data"])
