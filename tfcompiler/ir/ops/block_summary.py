"""Block-summary attention: what the sparsify_attention pass turns the Sparse Transformer's fixed
pattern (Child et al. 2019) into.

block_summary_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), key_bias? (B|1,1,1,S)) attrs
scale, causal, softcap, stride, summary -> (B,H,S,Dv).

The sequence is padded to whole blocks of `stride` positions. Query block n attends its own block
and the last `summary` positions of every block (the summary keys, gathered once for all queries),
those of its own block counted once; causality, the key bias and the sequence end are masked. Scores
cost S·(stride + S·summary/stride) instead of S². The NumPy evaluation below runs that blocked
algorithm, so the pass is checked against the dense masked op.
"""
from __future__ import annotations

import numpy as np

from .nn import MASKED, attention_infer, softmax
from .registry import OpTypeError, register


def _infer(attrs, types):
    q, k = types[:2]
    if q.shape[2] != k.shape[2]:
        raise OpTypeError(f"block-summary attention needs as many keys as queries: {q}, {k}")
    return attention_infer(attrs, types)


def block_summary_attention(q, k, v, key_bias, scale, causal, softcap, stride, summary):
    b, h, s, _ = q.shape
    group = h // k.shape[1]
    k, v = np.repeat(k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    n = -(-s // stride)
    pad = ((0, 0), (0, 0), (0, n * stride - s), (0, 0))
    qb, kb, vb = (np.pad(x.astype(np.float64), pad).reshape(b, h, n, stride, -1) for x in (q, k, v))
    bias = np.zeros((1, 1, 1, s)) if key_bias is None else key_bias
    bias = np.pad(bias.astype(np.float64), ((0, 0), (0, 0), (0, 0), (0, n * stride - s)), constant_values=MASKED)
    bias = bias.reshape(bias.shape[0], 1, n, stride)
    first = stride - summary  # the summary positions' offset in each block
    ks, vs = kb[:, :, :, first:].reshape(b, h, n * summary, -1), vb[:, :, :, first:].reshape(b, h, n * summary, -1)
    i = (np.arange(n)[:, None] * stride + np.arange(stride)[None, :])[..., None]  # (n, stride, 1)
    own_j = i.transpose(0, 2, 1)  # (n, 1, stride)
    summary_j = (np.arange(n)[:, None] * stride + np.arange(first, stride)[None, :]).reshape(1, 1, -1)
    own = qb @ np.swapaxes(kb, -1, -2) * scale  # (B,H,n,stride,stride)
    across = qb @ np.swapaxes(ks, -1, -2)[:, :, None] * scale  # (B,H,n,stride,n·summary)
    if softcap:
        own, across = (softcap * np.tanh(x / softcap) for x in (own, across))
    own = own + bias[:, :, :, None, :]
    across = across + bias[:, :, :, first:].reshape(bias.shape[0], 1, 1, 1, -1)
    own_ok = own_j < s
    across_ok = (summary_j < s) & (summary_j // stride != i // stride)  # own block's summary: counted above
    if causal:
        own_ok, across_ok = own_ok & (own_j <= i), across_ok & (summary_j <= i)
    scores = np.concatenate([np.where(own_ok, own, MASKED), np.where(across_ok, across, MASKED)], axis=-1)
    probs = softmax(scores)
    out = probs[..., :stride] @ vb + probs[..., stride:] @ vs[:, :, None]
    return out.reshape(b, h, n * stride, -1)[:, :, :s].astype(q.dtype)


register("block_summary_attention", (3, 4), _infer,
         lambda attrs, q, k, v, bias=None: [block_summary_attention(
             q, k, v, bias, attrs["scale"], attrs["causal"], attrs.get("softcap", 0.0), attrs["stride"],
             attrs["summary"])])
