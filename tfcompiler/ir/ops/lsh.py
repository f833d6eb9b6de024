"""Reformer's LSH attention (Kitaev et al. 2020) as one canonical op.

lsh_attention(qk (B,H,S,Dh), v (B,H,S,Dv), rotations (rounds, Dh, n/2), key_bias? (B|1,1,1,S)) attrs
chunk, causal, scale -> (B,H,S,Dv).

Queries and keys share one projection; keys are the unit-normalised queries. Each hashing round r
buckets every position by argmax([xR_r; -xR_r]) of its key (padded positions, whose key bias is at
most MASKED/2, share one more bucket after the others, so they never take a real position's place
in a chunk), sorts positions by (bucket, position),
cuts the sorted sequence into chunks of `chunk` and lets each chunk attend itself and the chunk
before it (the first chunk has none), same-bucket keys only; a position attends itself only when nothing else is visible
(its score gets -1e5, as Reformer's code does). Rounds are combined by their log-sum-exps:
o_i = Σ_r exp(z_i^r − logsumexp_r z_i^r) o_i^r. The sequence is padded to whole chunks inside
the graph (padding positions are never attended). The rotations are fixed when the spec is compiled.
"""
from __future__ import annotations

import numpy as np

from . import OpTypeError, register
from .nn import MASKED

SELF_MASK = -1e5


def _infer(attrs, types):
    qk, v = types[:2]
    if qk.shape[:3] != v.shape[:3]:
        raise OpTypeError(f"lsh attention needs qk and v with the same heads and length: {qk}, {v}")
    return [qk.with_shape(qk.shape[:3] + v.shape[3:])]


def buckets_of(keys: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """(B,H,S,Dh) keys -> (rounds, B,H,S) bucket ids."""
    rotated = np.einsum("bhsd,rdn->rbhsn", keys, rotations)
    return np.argmax(np.concatenate([rotated, -rotated], axis=-1), axis=-1)


def lsh_attention(qk, v, key_bias, rotations, chunk: int, causal: bool, scale: float):
    b, h, s, _ = qk.shape
    q = qk.astype(np.float64)
    k = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    v = v.astype(np.float64)
    bias = np.zeros((b, 1, 1, s)) if key_bias is None else np.broadcast_to(key_bias, (b, 1, 1, s))
    padded = -(-s // chunk) * chunk
    buckets = np.where(bias[:, :, 0] <= MASKED / 2, 2 * rotations.shape[-1], buckets_of(k, rotations))
    outputs, sums = [], []
    for bucket in buckets:
        key = np.pad(bucket * padded + np.arange(s), ((0, 0), (0, 0), (0, padded - s)),
                     constant_values=np.iinfo(np.int64).max // 2)  # padding sorts last
        order = np.argsort(key, axis=-1, kind="stable")  # (B,H,P)
        position = np.where(order < s, order, -1)
        sq, sk, sv = (np.take_along_axis(np.pad(x, ((0, 0), (0, 0), (0, padded - s), (0, 0))), order[..., None], 2)
                      for x in (q, k, v))
        sb = np.take_along_axis(np.pad(bucket, ((0, 0), (0, 0), (0, padded - s)), constant_values=-1), order, -1)
        sbias = np.take_along_axis(np.pad(bias[:, :, 0], ((0, 0), (0, 0), (0, padded - s))), order, -1)  # (B,H|1,P)
        n = padded // chunk
        cq = sq.reshape(b, h, n, chunk, -1)

        def with_previous(x):  # (B,H,P,...) -> (B,H,n,2·chunk,...): each chunk and the one before
            x = x.reshape((b, x.shape[1], n, chunk) + x.shape[3:])
            return np.concatenate([np.roll(x, 1, axis=2), x], axis=3)

        ck, cv, cb, cpos, cbias = (with_previous(x) for x in (sk, sv, sb, position, np.broadcast_to(sbias, (b, h, padded))))
        qpos, qb = position.reshape(b, h, n, chunk, 1), sb.reshape(b, h, n, chunk, 1)
        scores = cq @ np.swapaxes(ck, -1, -2) * scale + cbias[..., None, :]
        kpos, kb = cpos[..., None, :], cb[..., None, :]
        visible = (kb == qb) & (kpos >= 0)
        visible[:, :, 0, :, :chunk] = False  # the first chunk has no chunk before it
        if causal:
            visible &= kpos <= qpos
        scores = np.where(visible, scores, MASKED)
        scores = np.where(kpos == qpos, SELF_MASK, scores)
        top = scores.max(-1, keepdims=True)
        weights = np.exp(scores - top)
        total = weights.sum(-1, keepdims=True)
        out = (weights / total) @ cv  # (B,H,n,chunk,Dv)
        lse = (np.log(total) + top)[..., 0]
        inverse = np.argsort(order, axis=-1)
        outputs.append(np.take_along_axis(out.reshape(b, h, padded, -1), inverse[..., None], 2)[:, :, :s])
        sums.append(np.take_along_axis(lse.reshape(b, h, padded), inverse, -1)[:, :, :s])
    sums = np.stack(sums)
    weights = np.exp(sums - sums.max(0))
    weights /= weights.sum(0)
    return (np.stack(outputs) * weights[..., None]).sum(0).astype(qk.dtype)


register("lsh_attention", (3, 4), _infer,
         lambda attrs, qk, v, rotations, bias=None: [lsh_attention(qk, v, bias, rotations, attrs["chunk"],
                                                                   attrs["causal"], attrs["scale"])])
