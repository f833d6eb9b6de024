"""Banded (blocked) attention: what the sparsify_attention pass turns a bounded sparse pattern into.

banded_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), key_bias? (B|1,1,1,S)) attrs scale,
causal, softcap, pattern, block, back_blocks, ahead_blocks -> (B,H,S,Dv).

The sequence is padded to whole blocks of `block` positions; query block n attends key blocks
n - back_blocks .. n + ahead_blocks only, with the pattern, causality, the key bias and the sequence
end masked inside them. Scores cost S·(back_blocks + ahead_blocks + 1)·block instead of S². The
NumPy evaluation below runs that blocked algorithm, so the pass is checked against the dense op.
"""
from __future__ import annotations

import numpy as np

from ..patterns import NumpyGrid
from . import OpTypeError, register
from .nn import MASKED, _attention_infer, _softmax


def _infer(attrs, types):
    q, k = types[:2]
    if q.shape[2] != k.shape[2]:
        raise OpTypeError(f"banded attention needs as many keys as queries: {q}, {k}")
    return _attention_infer(attrs, types)


def banded_attention(q, k, v, key_bias, scale, causal, softcap, pattern, block, back_blocks, ahead_blocks):
    b, h, s, _ = q.shape
    group = h // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)
    nb = -(-s // block)
    span = back_blocks + ahead_blocks + 1
    pad = nb * block - s
    front, back = back_blocks * block, pad + ahead_blocks * block
    qb = np.pad(q.astype(np.float64), ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(b, h, nb, block, -1)
    kp = np.pad(k.astype(np.float64), ((0, 0), (0, 0), (front, back), (0, 0))).reshape(b, h, nb + span - 1, block, -1)
    vp = np.pad(v.astype(np.float64), ((0, 0), (0, 0), (front, back), (0, 0))).reshape(b, h, nb + span - 1, block, -1)
    keys = np.concatenate([kp[:, :, o:o + nb] for o in range(span)], axis=3)  # (B,H,nb,span·block,D)
    values = np.concatenate([vp[:, :, o:o + nb] for o in range(span)], axis=3)
    scores = qb @ np.swapaxes(keys, -1, -2) * scale  # (B, H, nb, block, span·block)
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    i = (np.arange(nb)[:, None, None] * block + np.arange(block)[None, :, None])  # (nb, block, 1)
    j = (np.arange(nb)[:, None, None] - back_blocks) * block + np.arange(span * block)[None, None, :]
    allowed = pattern.allowed(NumpyGrid(), i, j) & (j >= 0) & (j < s)
    if causal:
        allowed &= j <= i
    if key_bias is not None:
        kb = np.pad(np.broadcast_to(key_bias, (key_bias.shape[0], 1, 1, s)).astype(np.float64),
                    ((0, 0), (0, 0), (0, 0), (front, back))).reshape(key_bias.shape[0], 1, nb + span - 1, block)
        scores = scores + np.concatenate([kb[:, :, o:o + nb] for o in range(span)], axis=3)[:, :, :, None, :]
    scores = np.where(allowed, scores, MASKED)
    out = (_softmax(scores) @ values).reshape(b, h, nb * block, -1)[:, :, :s]
    return out.astype(q.dtype)


register("banded_attention", (3, 4), _infer,
         lambda attrs, q, k, v, bias=None: [banded_attention(
             q, k, v, bias, attrs["scale"], attrs["causal"], attrs.get("softcap", 0.0), attrs["pattern"],
             attrs["block"], attrs["back_blocks"], attrs["ahead_blocks"])])
