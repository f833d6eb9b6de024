"""ONNX lowering of canonical linearised attention (tfcompiler.ir.ops.linear): bidirectional by
MatMul and ReduceSum; causal (gated or not, from past sums or zeros) by onnxruntime's LinearAttention
kernel where the target allows it (lower/ort_kernels.py), else in chunks (lower/linear_chunks.py)."""
from __future__ import annotations

import numpy as np

from ..ir.ops.linear import split_inputs
from .common import for_query_heads, reduce
from .linear_chunks import causal_linear_attention
from .ort_kernels import recurrent_linear_attention
from .registry import lowers


@lowers("linear_attention")
def emit_linear_attention(e, attrs, inputs, types, label):
    """Bidirectional: phi_q (phi_kᵀ v) / (phi_q Σ phi_k): MatMul and ReduceSum, O(S·F·Dv).
    Causal (gated or not): onnxruntime's LinearAttention kernel where the target allows it, else in
    chunks (tfcompiler.lower.linear_chunks); stateful, from the past sums, also returning the new ones."""
    (q, k, v), gate, past = split_inputs(attrs, inputs)
    heads = types[0].shape[1]
    k, v = for_query_heads(e, k, types[1], heads), for_query_heads(e, v, types[2], heads)
    eps = e.const(attrs.get("eps", 0.0), np.float32)
    if attrs["causal"]:
        widths = (types[0].shape[3], types[2].shape[3])
        if e.can("LinearAttention"):
            out = recurrent_linear_attention(e, q, k, v, gate, eps, widths, heads, label, past)
        else:
            out = causal_linear_attention(e, q, k, v, gate, eps, widths, label, past)
        return list(out) if past else [out]
    numerator = e.node1("MatMul", q, e.node1("MatMul", e.node1("Transpose", k, perm=[0, 1, 3, 2]), v))
    denominator = e.node1("MatMul", q, e.node1("Transpose", reduce(e, "ReduceSum", k, [2]), perm=[0, 1, 3, 2]))
    return [e.node1("Div", numerator, e.node1("Add", denominator, eps), label=label or "LinearAttention")]
