"""The Routing Transformer's attention (Roy et al. 2021) as one canonical op.

routing_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), centroids (H,C,Dh),
key_bias? (B|1,1,1,S)) attrs causal, scale, shared_qk?, padding_routing? -> (B,H,S,Dv).

Queries and keys are routed by their unit vectors to C centroids, balanced: centroid c takes the
w = ⌈S/C⌉ queries and, separately, the w keys with the largest μ_c·x/‖x‖ (ties to the earlier
position), padded positions scoring MASKED: after every real one, whatever their content, so
padding never takes a real token's place. Each centroid's queries attend its keys (scaled dot products
plus the key bias; keys
whose bias is at most MASKED/2 are padding and hidden, and in a decoder keys after the query).
A query's output is the mean of its outputs over the centroids that chose it and gave it at least
one visible key; a query no centroid serves outputs zero. Cost O(C·w²) = O(S²/C) scores.

With shared_qk (k is then the queries themselves) the keys are the unit queries k/‖k‖ and each centroid
takes as keys the queries it took, so routing happens once; a query's own key scores SELF_MASK, seen
only where it is the query's one visible key (lucidrains' routing-transformer `shared_qk`).

With padding_routing "content" (routing-transformer's convention) padded positions are routed by their
content like any other, and in an encoder a query that a centroid took but shows no real key takes the
plain mean of that centroid's values and counts as served (the package's softmax over keys that are all
masked; in a decoder such a mean would read later tokens, and the package never meets the case: its causal
routing always has a key, the query's own or a memory key).

routing_commitment(q (B,H,S,Dh), k? (B,Hkv,S,Dh), centroids (H,C,Dh)) attr commitment -> () float32:
the k-means commitment term of routing-transformer, commitment · mean((x/‖x‖ - μ(x))²) over the
queries and keys (the queries alone without k; keys repeated to H heads), μ(x) the centroid with the
largest μ·x/‖x‖ (the first of equals), every position counted, padding included, as the package counts it.
"""
from __future__ import annotations

import numpy as np

from ..types import TensorType
from .lsh import SELF_MASK
from .nn import MASKED, attention_infer, softmax
from .registry import OpTypeError, register


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def routed(x: np.ndarray, centroids: np.ndarray, padded: np.ndarray) -> np.ndarray:
    """(B,H,S,D) vectors, (B,H,S) padding -> (B,H,C,w) the positions each centroid takes, best first."""
    scores = np.swapaxes(unit(x) @ np.swapaxes(centroids, -1, -2)[None], -1, -2)  # (B,H,C,S)
    scores = np.where(padded[:, :, None, :], MASKED, scores)
    window = -(-x.shape[2] // centroids.shape[1])
    return np.argsort(-scores, axis=-1, kind="stable")[..., :window]


def routing_attention(q, k, v, centroids, key_bias, causal: bool, scale: float, shared_qk: bool = False,
                      padding_routing: str = "last"):
    b, h, s, _ = q.shape
    group = h // k.shape[1]
    q, centroids = q.astype(np.float64), centroids.astype(np.float64)
    k, v = (np.repeat(x, group, axis=1).astype(np.float64) for x in (k, v))
    bias = np.zeros((b, 1, 1, s)) if key_bias is None else np.broadcast_to(key_bias, (b, 1, 1, s))
    bias = np.broadcast_to(bias[:, :, 0], (b, h, s))
    padded = bias <= MASKED / 2
    if shared_qk:
        k = unit(k)
    ranked_last = padded if padding_routing == "last" else np.zeros_like(padded)
    queries = routed(q, centroids, ranked_last)  # (B,H,C,w)
    keys = queries if shared_qk else routed(k, centroids, ranked_last)

    def take(x, index):  # (B,H,S,D), (B,H,C,w) -> (B,H,C,w,D)
        return np.take_along_axis(x[:, :, None], index[..., None], axis=3)

    key_bias = np.take_along_axis(bias[:, :, None], keys, axis=3)  # (B,H,C,w)
    scores = take(q, queries) @ np.swapaxes(take(k, keys), -1, -2) * scale + key_bias[..., None, :]
    if shared_qk:
        scores = np.where(keys[..., None, :] == queries[..., :, None], SELF_MASK, scores)
    visible = np.broadcast_to(key_bias[..., None, :] > MASKED / 2, scores.shape)
    if causal:
        visible = visible & (keys[..., None, :] <= queries[..., :, None])
    uniform = padding_routing == "content" and not causal  # a query with no real key averages the values
    served = np.ones(visible.shape[:-1], bool) if uniform else visible.any(-1)  # (B,H,C,w)
    out = softmax(np.where(visible, scores, MASKED)) @ take(v, keys) * served[..., None]
    total, count = np.zeros((b, h, s, v.shape[-1])), np.zeros((b, h, s))
    for c in range(queries.shape[2]):  # a query appears at most once per centroid
        np.put_along_axis(total, queries[:, :, c, :, None],
                          np.take_along_axis(total, queries[:, :, c, :, None], 2) + out[:, :, c], axis=2)
        np.put_along_axis(count, queries[:, :, c], np.take_along_axis(count, queries[:, :, c], 2) + served[:, :, c], 2)
    return (total / np.maximum(count, 1)[..., None]).astype(np.float32)


def routing_commitment(q, k, centroids, commitment: float):
    x = q if k is None else np.concatenate([q, np.repeat(k, q.shape[1] // k.shape[1], axis=1)], axis=2)
    x, centroids = unit(x.astype(np.float64)), centroids.astype(np.float64)
    nearest = np.argmax(x @ np.swapaxes(centroids, -1, -2)[None], axis=-1)  # (B,H,N)
    chosen = centroids[np.arange(centroids.shape[0])[None, :, None], nearest]  # (B,H,N,Dh)
    return np.array(commitment * np.mean((x - chosen) ** 2), np.float32)


def _infer(attrs, types):
    q, k, v, centroids, *bias = types
    return attention_infer(attrs, [q, k, v, *bias])


def _infer_commitment(attrs, types):
    q, *k, centroids = types
    if q.rank != 4 or centroids.rank != 3 or any(x.rank != 4 for x in k):
        raise OpTypeError("routing_commitment takes 4-D queries (and keys) and 3-D centroids")
    return [TensorType("float32", ())]


register("routing_attention", (4, 5), _infer,
         lambda attrs, q, k, v, centroids, bias=None: [routing_attention(
             q, k, v, centroids, bias, attrs["causal"], attrs["scale"], attrs.get("shared_qk", False),
             attrs.get("padding_routing", "last"))])
register("routing_commitment", (2, 3), _infer_commitment,
         lambda attrs, q, *rest: [routing_commitment(q, rest[0] if len(rest) == 2 else None, rest[-1],
                                                     attrs["commitment"])])
