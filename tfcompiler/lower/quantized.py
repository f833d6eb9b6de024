"""ONNX lowering of quantized_matmul: DynamicQuantizeLinear + MatMulInteger + the scales (standard
ops; onnxruntime runs the integer product on its u8s8 GEMM), or one com.microsoft
DynamicQuantizeMatMul where the target allows it; and of int4_matmul: com.microsoft MatMulNBits
(the only lowering: the quantize pass refuses int4 where the target lacks it)."""
from __future__ import annotations


def quantized_matmul(e, attrs, inputs, types, label):
    x, w, scale = inputs
    if e.can("DynamicQuantizeMatMul"):
        return [e.node("DynamicQuantizeMatMul", [x, w, scale], domain="com.microsoft",
                       label=label or "QuantizedMatMul")[0]]
    quantized, step, zero = e.node("DynamicQuantizeLinear", [x], n_outputs=3)
    product = e.node1("MatMulInteger", quantized, w, zero)
    scaled = e.node1("Mul", step, scale)
    return [e.node1("Mul", e.node1("Cast", product, to=1), scaled, label=label or "QuantizedMatMul")]


def int4_matmul(e, attrs, inputs, types, label):
    x, packed, scales = inputs
    return [e.node("MatMulNBits", [x, packed, e.node1("Reshape", scales, e.const([-1]))], domain="com.microsoft",
                   label=label or "Int4MatMul", K=attrs["k"], N=types[1].shape[0], bits=4,
                   block_size=attrs["block"], accuracy_level=0)[0]]
