"""Lowerings to onnxruntime's dedicated (contrib) kernels, used where the target's capability table
allows (tfcompiler.lower.targets); each computes exactly what the standard-op lowering beside it
computes."""
from __future__ import annotations

import numpy as np


def recurrent_linear_attention(e, q, k, v, gate, eps, widths: tuple[int, int], heads: int, label: str,
                               past: list = ()):
    """Causal linear attention by com.microsoft LinearAttention: the recurrence S_t = S_{t-1} +
    φ(k_t)[v_t, 1]ᵀ run by the kernel (update_rule linear), the appended ones column giving the
    normaliser φ(q_t)·z_t. With gate logits a: update_rule gated, decay log σ(a_t) and keys scaled
    by 1 - σ(a_t). q, k (B,H,S,F), v (B,H,S,Dv), a (B,H,S) -> (B,H,S,Dv); with ``past`` sums
    [S (B,H,F,Dv), z (B,H,F)] the kernel's state starts from [S, z] (B,H,F,Dv+1) and the result is
    (output, S, z) after the last position."""
    features, value_width = widths

    def packed(x, width):  # (B,H,S,W) -> (B,S,H·W)
        return e.node1("Reshape", e.node1("Transpose", x, perm=[0, 2, 1, 3]), e.const([0, 0, heads * width]))

    ones = e.node1("Expand", e.const(np.ones((1, 1, 1, 1)), np.float32),
                   e.node1("Concat", e.node1("Shape", v, start=0, end=3), e.const([1]), axis=0))
    extended = e.node1("Concat", v, ones, axis=3)
    extra = [e.node1("Concat", past[0], e.node1("Unsqueeze", past[1], e.const([3])), axis=3)] if past else []
    if gate is not None:
        k = e.node1("Mul", k, e.node1("Unsqueeze", e.node1("Sigmoid", e.node1("Neg", gate)), e.const([3])))
        log_gate = e.node1("Neg", e.node1("Softplus", e.node1("Neg", gate)))
        extra = (extra or [""]) + [e.node1("Transpose", log_gate, perm=[0, 2, 1])]  # decay (B,S,H)
    out, state = e.node("LinearAttention", [packed(q, features), packed(k, features),
                                            packed(extended, value_width + 1), *extra],
                        n_outputs=2, domain="com.microsoft", label="LinearAttentionKernel", q_num_heads=heads,
                        kv_num_heads=heads, update_rule="gated" if gate is not None else "linear", scale=1.0)
    out = e.node1("Transpose", e.node1("Reshape", out, e.const([0, 0, heads, value_width + 1])), perm=[0, 2, 1, 3])
    numerator, denominator = value_and_normaliser(e, out, value_width)
    out = e.node1("Div", numerator, e.node1("Add", denominator, eps), label=label or "LinearAttention")
    if not past:
        return out
    sums, normalisers = value_and_normaliser(e, state, value_width)  # (B,H,F,Dv), (B,H,F,1)
    return out, sums, e.node1("Squeeze", normalisers, e.const([3]))


def value_and_normaliser(e, x, value_width: int) -> tuple[str, str]:
    """(.., Dv + 1) -> its first Dv columns and its last one (the ones column's sums)."""
    return (e.node1("Slice", x, e.const([0]), e.const([value_width]), e.const([3])),
            e.node1("Slice", x, e.const([value_width]), e.const([value_width + 1]), e.const([3])))
