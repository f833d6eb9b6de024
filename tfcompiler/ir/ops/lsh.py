"""Reformer's LSH attention (Kitaev et al. 2020) as one canonical op.

lsh_attention(qk (B,H,S,Dh), v (B,H,S,Dv), rotations (H|1, Dh, rounds, n/2), key_bias? (B|1,1,1,S))
attrs chunk, causal, scale, same_bucket, look_back ("round" | "rolled"), key_epsilon, hash_padding,
before, after, multiple -> (B,H,S,Dv).

Queries and keys share one projection; keys are the normalised queries, k = x / √(|x|² + Dh·ε)
(ε = key_epsilon; trax's and Hugging Face's 1e-6, or 0 for unit keys). Each hashing round r buckets
every position by argmax([xR_r; -xR_r]) (padded positions, whose key bias is at most MASKED/2,
share one more bucket after the others, so they never take a real position's place in a chunk; with
hash_padding they are hashed like the others and only hidden as keys, as lucidrains' reformer-pytorch does),
sorts positions by (bucket, position) and cuts the sorted sequence into chunks of `chunk`. Each
chunk attends itself and the chunk before it: with look_back "round" the one before in its own
round (the first chunk has none, as the paper describes); with "rolled" the rounds' sequences are
one sequence and the first chunk of a round sees the last chunk of the round before (round 0 the
last round's), as trax and Hugging Face do. With look_back "rolled" a chunk may see `before` chunks
before it and `after` after it (default 1 and 0) in that one sequence of N = rounds·n chunks, rolled
round its ends as Hugging Face's `_look_adjacent` does: the shift k takes chunk c + k mod N, a shift
of N chunks or more is none, and a chunk reached by two shifts is seen twice. With same_bucket
only keys of the query's own bucket count (the paper); without it every key of the chunks seen
(trax, Hugging Face). A position attends
itself only when nothing else is visible (its score gets -1e5, as Reformer's code does). Rounds are
combined by their log-sum-exps: o_i = Σ_r exp(z_i^r − logsumexp_r z_i^r) o_i^r. The sequence is padded
to whole chunks inside the graph, or to a whole `multiple` of positions (a multiple of chunk: Hugging
Face pads to its layers' chunk lengths' least common multiple); padding positions are never attended.
"""
from __future__ import annotations

import numpy as np

from .nn import MASKED
from .registry import OpTypeError, register

SELF_MASK = -1e5
LOOK_BACK = ("round", "rolled")


def _infer(attrs, types):
    qk, v, rotations = types[:3]
    if qk.shape[:3] != v.shape[:3]:
        raise OpTypeError(f"lsh attention needs qk and v with the same heads and length: {qk}, {v}")
    if rotations.rank != 4 or rotations.shape[0] not in (1, qk.shape[1]) or rotations.shape[1] != qk.shape[3]:
        raise OpTypeError(f"lsh rotations must be (heads or 1, {qk.shape[3]}, rounds, buckets/2), got {rotations}")
    if attrs.get("look_back", "round") not in LOOK_BACK:
        raise OpTypeError(f"look_back must be one of {LOOK_BACK}, got {attrs['look_back']!r}")
    if (attrs.get("before", 1), attrs.get("after", 0)) != (1, 0) and attrs.get("look_back", "round") != "rolled":
        raise OpTypeError("lsh chunks other than the one before need look_back 'rolled'")
    if attrs.get("multiple", attrs["chunk"]) % attrs["chunk"]:
        raise OpTypeError(f"lsh padding multiple {attrs['multiple']} is no multiple of the chunk {attrs['chunk']}")
    return [qk.with_shape(qk.shape[:3] + v.shape[3:])]


def buckets_of(x: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(B,H,S,Dh) vectors, (H|1, Dh, rounds, n/2) rotations -> (rounds, B,H,S) bucket ids."""
    rotated = np.einsum("bhsd,hdrn->rbhsn", x, np.broadcast_to(rotations, (x.shape[1],) + rotations.shape[1:]))
    return np.argmax(np.concatenate([rotated, -rotated], axis=-1), axis=-1)


def around(x: np.ndarray, before: int, after: int) -> np.ndarray:
    """(B,H,N,chunk,...) -> (B,H,N,(before+1+after)·chunk,...): each chunk's neighbours, rolled round
    the ends by slices (a shift of N or more is none), the shift -before first."""
    return np.concatenate([np.concatenate([x[:, :, k:], x[:, :, :k]], axis=2) for k in range(-before, after + 1)],
                          axis=3)


def lsh_attention(qk, v, key_bias, rotations, chunk: int, causal: bool, scale: float, same_bucket: bool = True,
                  look_back: str = "round", key_epsilon: float = 0.0, hash_padding: bool = False, before: int = 1,
                  after: int = 0, multiple: int | None = None):
    b, h, s, dh = qk.shape
    q = qk.astype(np.float64)
    k = q / np.maximum(np.sqrt((q * q).sum(-1, keepdims=True) + dh * key_epsilon), 1e-12)
    v = v.astype(np.float64)
    bias = np.zeros((b, 1, 1, s)) if key_bias is None else np.broadcast_to(key_bias, (b, 1, 1, s))
    padded = -(-s // (multiple or chunk)) * (multiple or chunk)
    n = padded // chunk
    buckets = buckets_of(q, rotations)
    if not hash_padding:
        buckets = np.where(bias[:, :, 0] <= MASKED / 2, rotations.shape[-1] * 2, buckets)
    rounds = []  # per round: the order and the sorted chunks of queries, keys, values, buckets, positions, bias

    def chunked(x):  # sorted (B,H|1,P,...) -> (B,H|1,n,chunk,...)
        return x.reshape((b, x.shape[1], n, chunk) + x.shape[3:])

    for bucket in buckets:
        key = np.pad(bucket * padded + np.arange(s), ((0, 0), (0, 0), (0, padded - s)),
                     constant_values=np.iinfo(np.int64).max // 2)  # padding sorts last
        order = np.argsort(key, axis=-1, kind="stable")  # (B,H,P)
        sorted_rows = [np.take_along_axis(np.pad(x, ((0, 0), (0, 0), (0, padded - s), (0, 0))), order[..., None], 2)
                       for x in (q, k, v)]
        sb = np.take_along_axis(np.pad(bucket, ((0, 0), (0, 0), (0, padded - s)), constant_values=-1), order, -1)
        sbias = np.take_along_axis(np.pad(np.broadcast_to(bias[:, :, 0], (b, h, s)), ((0, 0), (0, 0), (0, padded - s))),
                                   order, -1)
        rounds.append((order, [chunked(x) for x in (*sorted_rows, sb, np.where(order < s, order, -1), sbias)]))
    outputs, sums = [], []
    widened = None  # neighbours other than the one chunk before: every round's chunks as one sequence
    if (before, after) != (1, 0):
        widened = [around(np.concatenate([parts[i] for _, parts in rounds], axis=2), before, after)
                   for i in range(1, 6)]
    for r, (order, (cq, ck, cv, cb, cpos, cbias)) in enumerate(rounds):
        previous = rounds[r - 1][1] if look_back == "rolled" else rounds[r][1]  # r - 1 wraps to the last round

        def with_previous(x, previous):  # (B,H,n,chunk,...) -> (B,H,n,2·chunk,...): each chunk and the one before
            return np.concatenate([np.concatenate([previous[:, :, -1:], x[:, :, :-1]], axis=2), x], axis=3)

        if widened is None:
            wk, wv, wb, wpos, wbias = (with_previous(x, y) for x, y in zip((ck, cv, cb, cpos, cbias), previous[1:]))
        else:
            wk, wv, wb, wpos, wbias = (x[:, :, r * n:(r + 1) * n] for x in widened)
        scores = cq @ np.swapaxes(wk, -1, -2) * scale + wbias[..., None, :]
        kpos, qpos = wpos[..., None, :], cpos[..., None]
        visible = np.broadcast_to(kpos >= 0, scores.shape).copy()
        if same_bucket:
            visible &= wb[..., None, :] == cb[..., None]
        if look_back == "round":
            visible[:, :, 0, :, :chunk] = False  # the first chunk has no chunk before it
        if causal:
            visible &= kpos <= qpos
        scores = np.where(visible, scores, MASKED)
        scores = np.where(kpos == qpos, SELF_MASK, scores)
        top = scores.max(-1, keepdims=True)
        weights = np.exp(scores - top)
        total = weights.sum(-1, keepdims=True)
        out = (weights / total) @ wv  # (B,H,n,chunk,Dv)
        lse = (np.log(total) + top)[..., 0]
        inverse = np.argsort(order, axis=-1)
        outputs.append(np.take_along_axis(out.reshape(b, h, padded, -1), inverse[..., None], 2)[:, :, :s])
        sums.append(np.take_along_axis(lse.reshape(b, h, padded), inverse, -1)[:, :, :s])
    sums = np.stack(sums)
    weights = np.exp(sums - sums.max(0))
    weights /= weights.sum(0)
    return (np.stack(outputs) * weights[..., None]).sum(0).astype(qk.dtype)


register("lsh_attention", (3, 4), _infer,
         lambda attrs, qk, v, rotations, bias=None: [lsh_attention(
             qk, v, bias, rotations, attrs["chunk"], attrs["causal"], attrs["scale"], attrs.get("same_bucket", True),
             attrs.get("look_back", "round"), attrs.get("key_epsilon", 0.0), attrs.get("hash_padding", False),
             attrs.get("before", 1), attrs.get("after", 0), attrs.get("multiple"))])
