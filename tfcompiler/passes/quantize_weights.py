"""Quantize the weights of the linear maps (`tfc compile --quantize int8 | int4`).

int8:

    x ─ matmul(W)            =>      x ─ quantized_matmul(round(W / s), s)

W (K, N) float32 becomes int8 with one scale per output column, s = max|W[:, n]| / 63: seven bits
of magnitude, because onnxruntime's u8s8 GEMM on AVX2 processors without VNNI adds pairs of
products in 16 bits, which saturate with full-range weights. The activations are quantized at run
time, per tensor (quantized_matmul). Every matmul whose right operand is a 2-D float param, or the
transpose of one (a LM head tied to the token embedding: the int8 copy is of the transpose, the
embedding itself stays fp32), is quantized; embeddings, norms and attention scores stay fp32.

int4 (weight-only):

    x ─ matmul(W)            =>      x ─ int4_matmul(4-bit codes, block scales)

each column of W in blocks of 32 rows, a scale per block, max|block| / 7, codes round(W / scale) + 8
in [0, 15], two a byte; the activations stay fp32. Two layouts of the same codes: "nbits", column
by column (onnxruntime's MatMulNBits, `--target ort-cpu`), and "rows", W's (K, N) codes row by row
as ONNX packs a 4-bit tensor (the standard DequantizeLinear with blocks, opset 21: any runtime;
onnxruntime turns DequantizeLinear + MatMul back into MatMulNBits). It shrinks the weights 7x; on a
processor without int8 dot products it runs at about fp32 speed on prompts and pays off when
decoding is bound by weight reads.

This pass changes the numbers on purpose: the pipeline checks it against the unquantized IR with
an accuracy budget (relative RMS error of every output at most `budget`) instead of equality, and
--explain prints the deviation it measured.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph
from ..ir.recipes import Recipe
from .base import ContractError, Pass, PassResult
from .matching import Match, misses
from .report import span

LEVELS = 63  # the largest int8 magnitude
BLOCK = 32  # int4 rows per scale


class Quantization:
    """The (values, scales) of one weight (an array or a recipe), made once for both parts: drawing a
    seeded weight is the costly step. Dropped once both parts are taken, so memory stays bounded."""

    def __init__(self, weight, transposed: bool, bits: int, layout: str = "nbits"):
        self.weight, self.transposed, self.bits, self.layout = weight, transposed, bits, layout
        self.lock, self.result, self.taken = threading.Lock(), None, set()

    def part(self, name: str) -> np.ndarray:
        with self.lock:  # the writer makes recipes on several threads
            if self.result is None:
                weight = np.asarray(self.weight, dtype=np.float32)
                weight = weight.T if self.transposed else weight
                self.result = quantize(weight) if self.bits == 8 else quantize_int4(weight, self.layout)
            out = self.result[0 if name == "values" else 1]
            self.taken.add(name)
            if len(self.taken) == 2:
                self.result, self.taken = None, set()
            return out


@dataclass(frozen=True)
class QuantizedWeight(Recipe):
    """The int values (part "values") or float32 scales (part "scales") of a weight's quantization,
    computed when an array is needed."""

    source: Quantization
    part: str
    shape: tuple[int, ...]

    @property
    def dtype(self):
        if self.part == "scales":
            return np.dtype(np.float32)
        return np.dtype(np.int8 if self.source.bits == 8 else np.uint8)

    def __array__(self, dtype=None, copy=None):
        out = self.source.part(self.part)
        return out if dtype is None else out.astype(dtype)


def quantize(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scales per column) with weight ≈ values · scales."""
    scales = np.abs(weight).max(axis=0) / LEVELS
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    values = np.clip(np.rint(weight / scales), -LEVELS, LEVELS).astype(np.int8)
    return values, scales


def quantize_int4(weight: np.ndarray, layout: str = "nbits") -> tuple[np.ndarray, np.ndarray]:
    """The 4-bit codes and block scales of a (K, N) weight in blocks of 32 rows (the last one zero
    padded): "nbits", packed (N, ⌈K/32⌉, 16) uint8 and scales (N, ⌈K/32⌉); "rows", the (K, N) codes
    packed flat, two a byte low nibble first (an odd count ends in a zero nibble), and scales
    (⌈K/32⌉, N)."""
    k, n = weight.shape
    padded = np.zeros((-(-k // BLOCK) * BLOCK, n), np.float32)
    padded[:k] = weight
    blocks = padded.T.reshape(n, -1, BLOCK)
    scales = np.abs(blocks).max(axis=2) / 7
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = (np.clip(np.rint(blocks / scales[..., None]), -8, 7) + 8).astype(np.uint8)
    if layout == "rows":
        codes, scales = codes.reshape(n, -1)[:, :k].T.reshape(-1), np.ascontiguousarray(scales.T)
        codes = np.concatenate([codes, np.zeros(len(codes) % 2, np.uint8)])
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8), scales


def quantizable(graph: Graph, node: int) -> Match:
    """A matmul whose right operand is a 2-D float32 param or its transpose: binds that param's op
    and whether it is transposed."""
    w = graph.inputs_of(node)[1]
    op, transposed = graph.op(w.node), False
    if op.type == "transpose" and tuple(op.attrs["perm"]) == (1, 0):
        op, transposed = graph.op(graph.inputs_of(w.node)[0].node), True
    if op.type != "param" or len(op.attrs["shape"]) != 2 or op.attrs["dtype"] != "float32":
        return Match.fail("its right operand is not a 2-D float32 weight")
    return Match.of(param=op, transposed=transposed)


class QuantizeWeights(Pass):
    name = "quantize_weights"
    description = "int8 weights for the linear maps, activations quantized at run time (or int4, weight-only)"
    after = {"pack_projections": "a packed projection is quantized as one weight"}
    before = {"eliminate_dead_code": "the float weights are left dead for it"}

    def __init__(self, bits: int = 8, layout: str = "nbits"):
        self.bits, self.layout = bits, layout  # layout: of int4 codes (see quantize_int4)
        self.budget = self.BUDGETS[bits]
    # relative RMS error of the outputs the pipeline accepts: a broken rewrite moves them ~100%; int4's
    # rounding alone moves a random-weight BERT-base about 25% (real weights are smoother)
    BUDGETS = {8: 0.1, 4: 0.5}

    def rewrite(self, graph: Graph) -> PassResult:
        count, saved, made, origins, failed = 0, 0, {}, [], []
        for node in graph.by_type("matmul"):
            match = quantizable(graph, node)
            if not match:
                failed.append((graph.op(node).origin, match.reason))
                continue
            op, transposed = match.bound["param"], match.bound["transposed"]
            name, shape = op.attrs["name"], tuple(op.attrs["shape"])[::-1 if transposed else 1]
            weight = graph.weights.get(name)
            suffix = ".T" if transposed else ""
            k, n = shape
            blocks = -(-k // BLOCK)
            if self.bits == 8:
                parts = (("values", "int8", shape), ("scales", "float32", (n,)))
            elif self.layout == "rows":
                parts = (("values", "uint8", (-(-k * n // 2),)), ("scales", "float32", (blocks, n)))
            else:
                parts = (("values", "uint8", (n, blocks, BLOCK // 2)), ("scales", "float32", (n, blocks)))
            if (name, transposed) not in made:  # a weight shared by several matmuls is quantized once
                source = Quantization(weight, transposed, self.bits, self.layout)
                params = []
                for part, dtype, part_shape in parts:
                    part_name = f"{name}{suffix}.int{self.bits}" if part == "values" else f"{name}{suffix}.scale"
                    if weight is not None:
                        graph.weights[part_name] = QuantizedWeight(source, part, part_shape)
                    params.append(graph.add1("param", (), dict(name=part_name, dtype=dtype, shape=part_shape,
                                                               init="quantized"), origin=op.origin))
                    saved -= int(np.prod(part_shape)) * np.dtype(dtype).itemsize
                made[name, transposed] = params
                saved += 4 * k * n
            op_type, attrs = ("quantized_matmul", {}) if self.bits == 8 else \
                ("int4_matmul", dict(k=k, n=n, block=BLOCK, layout=self.layout))
            origins.append(graph.op(node).origin)
            graph.replace(node, op_type, (graph.inputs_of(node)[0], *made[name, transposed]), attrs,
                          label=graph.op(node).label or "QuantizedMatMul")
            count += 1
        if not count:
            return PassResult(graph, False, ["nothing to quantize: no matmul has a 2-D weight"]
                              + misses(failed, "matmul(s)"))
        kind = "int8 weights with a scale per column" if self.bits == 8 else "int4 weights in blocks of 32"
        return PassResult(graph, True, [f"quantized {count} linear map(s) to {kind}: "
                                        f"{saved / 2 ** 20:.1f} MiB less weight data (at {span(origins)})"]
                          + misses(failed, "matmul(s)"))

    def ensures(self, graph: Graph) -> None:
        for node in graph.by_type("matmul"):
            if quantizable(graph, node):
                raise ContractError("a matmul with a float weight is left unquantized", graph.op(node).origin)
