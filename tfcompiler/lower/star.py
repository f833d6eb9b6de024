"""ONNX lowering of the Star-Transformer's satellite attention: the five-key context of every
position (ring neighbours by Pad/Slice, itself, its embedding, the relay by Expand) stacked on a new
axis, scored and weighted by batched MatMuls; the ends of the ring and padded neighbours masked by
an additive bias shifted the same way. O(S) memory."""
from __future__ import annotations

import numpy as np

from .common import length_of
from .registry import lowers


@lowers("star_attention")
def star_attention(e, attrs, inputs, types, label):
    q, k, v, ke, ve, ks, vs, *bias = inputs
    s = length_of(e, q, 2)
    end, rest = e.node1("Reshape", s, e.const([1])), e.const([2 ** 62])

    def neighbours(x, pads, fill=None):  # -> (previous, next) along axis 2
        padded = e.node1("Pad", x, e.const(pads), *([fill] if fill else []))
        return (e.node1("Slice", padded, e.const([0]), end, e.const([2])),
                e.node1("Slice", padded, e.const([2]), rest, e.const([2])))

    def context(x, xe, xs):  # (B,H,S,D) -> (B,H,S,5,D)
        previous, following = neighbours(x, [0, 0, 1, 0, 0, 0, 1, 0])
        relay = e.node1("Expand", xs, e.node1("Shape", x))
        return e.node1("Concat", *(e.node1("Unsqueeze", part, e.const([3]))
                                   for part in (previous, x, following, xe, relay)), axis=3)

    keys, values = context(k, ke, ks), context(v, ve, vs)
    scores = e.node1("MatMul", e.node1("Unsqueeze", q, e.const([3])), e.node1("Transpose", keys, perm=[0, 1, 2, 4, 3]))
    scores = e.node1("Mul", e.node1("Squeeze", scores, e.const([3])), e.const(attrs["scale"], np.float32))
    key_bias = (e.node1("Squeeze", bias[0], e.const([2])) if bias else  # (B|1, 1, S)
                e.node1("Expand", e.const(np.zeros((1, 1, 1)), np.float32),
                        e.node1("Concat", e.const([1, 1]), end, axis=0)))
    previous, following = neighbours(key_bias, [0, 0, 1, 0, 0, 1], e.mask())
    zero = e.node1("Mul", key_bias, e.const(0.0, np.float32))
    ring = e.node1("Concat", *(e.node1("Unsqueeze", part, e.const([3]))
                               for part in (previous, zero, following, zero, zero)), axis=3)
    probs = e.node1("Softmax", e.node1("Add", scores, ring), axis=-1)
    out = e.node1("MatMul", e.node1("Unsqueeze", probs, e.const([3])), values)
    return [e.node1("Squeeze", out, e.const([3]), label=label or "StarAttention")]
