"""ONNX lowering of quantized_matmul: DynamicQuantizeLinear + MatMulInteger + the scales (standard
ops; onnxruntime runs the integer product on its u8s8 GEMM), or one com.microsoft
DynamicQuantizeMatMul where the target allows it."""
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


