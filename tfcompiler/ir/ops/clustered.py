"""Clustered attention (Vyas et al. 2020) as one canonical op.

clustered_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), planes (Dh, bits), key_bias?
(B|1,1,1,S)) attrs clusters, iterations, scale -> (B,H,S,Dv).

Each query is hashed to bits ±1 by the signs of its projections on random hyperplanes (x·p ≥ 0 is
+1). K-means in Hamming space groups the hashes into C clusters: the centroids start as the hashes
of the evenly spaced real queries, the ⌊c·n/C⌋-th of the n unpadded ones (the paper starts from
random ones; padding never seeds a cluster), then `iterations` Lloyd
steps assign each query to its nearest centroid (the most agreeing bits; the lower cluster among
equals) and set each centroid to the bitwise majority of its real (unpadded) members (+1 on a tie;
an empty cluster keeps its centroid). A cluster's query is the mean of its real members' queries;
it attends every key (scaled scores plus the key bias), and each query takes its cluster's output.
Cost O(S·C) scores; keys whose bias is at most MASKED/2 are padding and do not vote.
"""
from __future__ import annotations

import numpy as np

from .nn import MASKED, attention_infer, softmax, rows_of, spaced_real
from .registry import OpTypeError, register


def hamming_clusters(hashes: np.ndarray, real: np.ndarray, clusters: int, iterations: int) -> np.ndarray:
    """(B,H,S,bits) ±1 hashes, (B|1,1,S,1) real-query weights -> (B,H,S,C) one-hot assignments."""
    centroids = rows_of(hashes, spaced_real(real[:, 0, :, 0] > 0, clusters))  # (B,H,C,bits)

    def assign(centroids):
        nearest = np.argmax(hashes @ np.swapaxes(centroids, -1, -2), axis=-1)  # first of equals
        return (nearest[..., None] == np.arange(clusters)).astype(hashes.dtype)

    for _ in range(iterations):
        members = assign(centroids) * real
        votes = np.swapaxes(members, -1, -2) @ hashes  # (B,H,C,bits)
        majority = np.where(votes >= 0, 1.0, -1.0)
        centroids = np.where(members.sum(2)[..., None] > 0, majority, centroids)
    return assign(centroids)


def clustered_attention(q, k, v, planes, key_bias, clusters: int, iterations: int, scale: float):
    b, h, s, _ = q.shape
    group = h // k.shape[1]
    k, v = (np.repeat(x, group, axis=1).astype(np.float64) for x in (k, v))
    hashes = np.where(q.astype(np.float32) @ planes.astype(np.float32) >= 0, 1.0, -1.0)
    bias = np.zeros((1, 1, 1, s)) if key_bias is None else key_bias
    real = (np.swapaxes(bias, -1, -2) > MASKED / 2).astype(np.float64)  # (B|1,1,S,1)
    assignment = hamming_clusters(hashes, real, clusters, iterations)
    members = assignment * real
    centroid_queries = (np.swapaxes(members, -1, -2) @ q.astype(np.float64)) / np.maximum(
        members.sum(2)[..., None], 1)  # (B,H,C,Dh)
    out = softmax(centroid_queries @ np.swapaxes(k, -1, -2) * scale + bias) @ v  # (B,H,C,Dv)
    return (assignment @ out).astype(np.float32)


def _infer(attrs, types):
    q, k, v, planes, *bias = types
    if q.shape[2] != k.shape[2]:
        raise OpTypeError(f"clustered attention is self-attention: {q}, {k}")
    if planes.shape[0] != q.shape[3]:
        raise OpTypeError(f"hash planes {planes} do not fit query heads {q}")
    return attention_infer(attrs, [q, k, v, *bias])


register("clustered_attention", (4, 5), _infer,
         lambda attrs, q, k, v, planes, bias=None: [clustered_attention(
             q, k, v, planes, bias, attrs["clusters"], attrs["iterations"], attrs["scale"])])
