"""ONNX lowering of `routing_commitment`, the Routing Transformer's k-means commitment term
(lucidrains' routing-transformer returns it beside the output, in eval too): the unit vectors' nearest
centroid by ArgMax, taken by a one-hot MatMul, and the scaled mean squared distance to it."""
from __future__ import annotations

import numpy as np

from .common import reduce, repeat_heads
from .content_sparse import unit
from .registry import lowers


@lowers("routing_commitment")
def routing_commitment(e, attrs, inputs, types, label):
    """commitment · ReduceMean((x/‖x‖ - μ_nearest)²) over the queries, and the keys when given."""
    q, *k, centroids = inputs
    heads, width, clusters = types[0].shape[1], types[0].shape[3], types[-1].shape[1]
    x = q
    if k:
        kv_heads = types[1].shape[1]
        key = repeat_heads(e, k[0], heads // kv_heads, heads, width) if kv_heads != heads else k[0]
        x = e.node1("Concat", q, key, axis=2)
    # in fp32 in a low-precision model: a mean of many small squares, which fp16's and bf16's steps lose
    x, centroids = unit(e, e.fp32(x)), e.fp32(centroids)
    scores = e.node1("MatMul", x, e.node1("Transpose", centroids, perm=[0, 2, 1]))  # (B,H,N,C)
    nearest = e.node1("ArgMax", scores, axis=-1, keepdims=1)  # the first of equals, as np.argmax
    one_hot = e.node1("Cast", e.node1("Equal", nearest, e.const(np.arange(clusters))), to=1)
    distance = e.node1("Sub", x, e.node1("MatMul", one_hot, centroids))  # (B,H,N,Dh)
    mean = reduce(e, "ReduceMean", e.node1("Mul", distance, distance), [0, 1, 2, 3], keepdims=False)
    return [e.node1("Mul", mean, e.const(attrs["commitment"], np.float32), label=label or "RoutingCommitment")]
