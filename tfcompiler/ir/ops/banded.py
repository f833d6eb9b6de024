"""Banded (blocked) attention: what the sparsify_attention pass turns a bounded sparse pattern into.

banded_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), key_bias? (B|1,1,1,S)) attrs scale,
causal, softcap, pattern, block, back_blocks, ahead_blocks, global_tokens, stride_columns -> (B,H,S,Dv).

The sequence is padded to whole blocks of `block` positions; query block n attends key blocks
n - back_blocks .. n + ahead_blocks only, with the pattern, causality, the key bias and the sequence
end masked inside them. Scores cost S·(back_blocks + ahead_blocks + 1)·block instead of S². With
`global_tokens` g (Longformer), every query block also attends the first g keys as extra columns
(and the band skips them), and the first g queries attend every key as dense rows: S·(band + g) +
g·S. With `stride_columns` l (the Sparse Transformer's strided pattern; block = l, a band of l - 1)
query (block a, offset r) also attends offset r of every other block, by MatMuls over the
offset-major layout: S·(3l + S/l). The NumPy evaluation below runs that blocked algorithm, so the
pass is checked against the dense op.
"""
from __future__ import annotations

import numpy as np

from ..patterns import NumpyGrid
from .nn import MASKED, attention_infer, softmax
from .registry import OpTypeError, register


def banded_infer(attrs, types):
    q, k = types[:2]
    if q.shape[2] != k.shape[2]:
        raise OpTypeError(f"banded attention needs as many keys as queries: {q}, {k}")
    return attention_infer(attrs, types)


def banded_attention(q, k, v, key_bias, scale, causal, softcap, pattern, block, back_blocks, ahead_blocks,
                     global_tokens=0, stride_columns=0):
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
    g = min(global_tokens, s)
    allowed = pattern.allowed(NumpyGrid(s), i, j) & (j >= g) & (j < s)
    if causal:
        allowed &= j <= i
    bias = np.zeros((1, 1, 1, s)) if key_bias is None else np.broadcast_to(key_bias, (key_bias.shape[0], 1, 1, s))
    kb = np.pad(bias.astype(np.float64), ((0, 0), (0, 0), (0, 0), (front, back))).reshape(
        bias.shape[0], 1, nb + span - 1, block)
    scores = scores + np.concatenate([kb[:, :, o:o + nb] for o in range(span)], axis=3)[:, :, :, None, :]
    scores = np.where(allowed, scores, MASKED)
    if g:  # the global keys as extra columns of every block
        global_scores = qb @ np.swapaxes(k[:, :, None, :g].astype(np.float64), -1, -2) * scale + bias[:, :, :, None, :g]
        if softcap:
            global_scores = softcap * np.tanh(global_scores / softcap)
        global_allowed = (np.arange(g) <= i) if causal else np.ones((1, 1, g), bool)
        scores = np.concatenate([np.where(global_allowed, global_scores, MASKED), scores], axis=-1)
        values = np.concatenate([np.broadcast_to(v[:, :, None, :g], (b, h, nb, g, v.shape[-1])), values], axis=3)
    if stride_columns:  # query (block a, offset r) also sees offset r of every other block
        qt = np.swapaxes(qb, 2, 3)  # (B,H,block,nb,D)
        kt, vt = (np.swapaxes(np.pad(x.astype(np.float64), ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(
            b, h, nb, block, -1), 2, 3) for x in (k, v))
        columns = np.swapaxes(qt @ np.swapaxes(kt, -1, -2) * scale, 2, 3)  # (B,H,nb,block,nb)
        if softcap:
            columns = softcap * np.tanh(columns / softcap)
        key_bias_t = np.pad(bias.astype(np.float64), ((0, 0), (0, 0), (0, 0), (0, pad)),
                            constant_values=MASKED).reshape(bias.shape[0], 1, nb, block)
        columns = columns + np.swapaxes(key_bias_t, 2, 3)[:, :, None]
        a, r, kb = np.arange(nb)[:, None, None], np.arange(block)[None, :, None], np.arange(nb)[None, None, :]
        visible = (kb != a) & (kb * block + r < s) & ((kb < a) if causal else True)
        band_width = scores.shape[-1]
        probs = softmax(np.concatenate([scores, np.where(visible, columns, MASKED)], axis=-1))
        out = probs[..., :band_width] @ values + np.swapaxes(np.swapaxes(probs[..., band_width:], 2, 3) @ vt, 2, 3)
        return out.reshape(b, h, nb * block, -1)[:, :, :s].astype(q.dtype)
    out = (softmax(scores) @ values).reshape(b, h, nb * block, -1)[:, :, :s]
    if g:  # the global queries as dense rows
        out[:, :, :g] = dense_attention_rows(q[:, :, :g], k, v, bias, scale, softcap, causal)
    return out.astype(q.dtype)


def dense_attention_rows(q, k, v, bias, scale, softcap, causal):
    """The first g queries over every key (j <= i when causal)."""
    scores = q.astype(np.float64) @ np.swapaxes(k, -1, -2) * scale
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    scores = scores + bias
    if causal:
        g, s = scores.shape[-2:]
        scores = np.where(np.arange(s)[None, :] <= np.arange(g)[:, None], scores, MASKED)
    return softmax(scores) @ v


register("banded_attention", (3, 4), banded_infer,
         lambda attrs, q, k, v, bias=None: [banded_attention(
             q, k, v, bias, attrs["scale"], attrs["causal"], attrs.get("softcap", 0.0), attrs["pattern"],
             attrs["block"], attrs["back_blocks"], attrs["ahead_blocks"], attrs.get("global_tokens", 0),
             attrs.get("stride_columns", 0))])
