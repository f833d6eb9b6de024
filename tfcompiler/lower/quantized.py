"""ONNX lowering of quantized_matmul: DynamicQuantizeLinear + MatMulInteger + the scales (standard
ops; onnxruntime runs the integer product on its u8s8 GEMM), or one com.microsoft
DynamicQuantizeMatMul where the target allows it; and of int4_matmul: com.microsoft MatMulNBits
(the "nbits" layout, where the target has it), or the standard 4-bit DequantizeLinear with blocks
and a MatMul (the "rows" layout, opset 21: its codes are a UINT4 tensor as they are)."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from .registry import lowers

INT4_OPSET = 21  # DequantizeLinear with 4-bit data and blocks


@lowers("quantized_matmul")
def quantized_matmul(e, attrs, inputs, types, label):
    x, w, scale = inputs
    if e.can("DynamicQuantizeMatMul"):
        return [e.node("DynamicQuantizeMatMul", [x, w, scale], domain="com.microsoft",
                       label=label or "QuantizedMatMul")[0]]
    quantized, step, zero = e.node("DynamicQuantizeLinear", [x], n_outputs=3)
    product = e.node1("MatMulInteger", quantized, w, zero)
    scaled = e.node1("Mul", step, scale)
    return [e.node1("Mul", e.node1("Cast", product, to=1), scaled, label=label or "QuantizedMatMul")]


@lowers("int4_matmul")
def int4_matmul(e, attrs, inputs, types, label):
    x, packed, scales = inputs
    if attrs.get("layout") == "rows":
        k, n, block = attrs["k"], attrs["n"], attrs["block"]
        blocks = types[2].shape[0]
        codes = e.retype(packed, TensorProto.UINT4, (k, n))
        key = ("int4 zero point", blocks, n)  # 8 in every block (0x88 bytes), one per shape
        if key not in e.memo:
            e.memo[key] = e.retype(e.initializer(np.full(-(-blocks * n // 2), 0x88, np.uint8),
                                                 e.unique(f"/constants/int4_eights_{blocks}x{n}")), TensorProto.UINT4,
                                   (blocks, n))
        eights = e.memo[key]
        weight = e.node1("DequantizeLinear", codes, scales, eights, axis=0, block_size=block)  # (K, N)
        return [e.node1("MatMul", x, weight, label=label or "Int4MatMul")]
    return [e.node("MatMulNBits", [x, packed, e.node1("Reshape", scales, e.const([-1]))], domain="com.microsoft",
                   label=label or "Int4MatMul", K=attrs["k"], N=types[1].shape[0], bits=4,
                   block_size=attrs["block"], accuracy_level=0)[0]]
