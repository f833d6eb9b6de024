"""Block-sparse attention by gathering key blocks: what the sparsify_attention pass turns a block
layout with random or far-apart blocks (BigBird) into.

block_sparse_attention(q (B,H,S,Dh), k (B,Hkv,S,Dh), v (B,Hkv,S,Dv), key_bias? (B|1,1,1,S)) attrs
scale, causal, softcap, pattern (Blocks), table, dense_rows -> (B,H,S,Dv).

`table` holds, for every query block of the layout, the key blocks it sees (padded with -1; one the
layout counts n times listed n times, so its keys count n times): query block n gathers those K key
blocks by a constant index (blocks past the input's end, and the -1 padding, read a masked empty
block) and attends them with the pattern, causality, the key bias and the sequence end masked; cost
S·K·block instead of S². The first `dense_rows` query blocks (global blocks, which see every block
once) attend every key as dense rows; so do the input's last
`pattern.trailing` blocks, which every query block also gathers as key blocks (Hugging Face's
BigBird: wherever the input ends).
"""
from __future__ import annotations

import numpy as np

from ..patterns import NumpyGrid
from .banded import banded_infer, dense_attention_rows
from .nn import MASKED, softmax
from .registry import register


def block_sparse_attention(q, k, v, key_bias, scale, causal, softcap, pattern, table, dense_rows):
    b, h, s, _ = q.shape
    group = h // k.shape[1]
    k, v = np.repeat(k, group, axis=1).astype(np.float64), np.repeat(v, group, axis=1).astype(np.float64)
    block = pattern.block
    nb = -(-s // block)
    pad = nb * block - s
    index = np.asarray(table, np.int64)[:nb]
    index = np.where((index < 0) | (index >= nb), nb, index)  # -> the empty block
    index = np.concatenate([index, trailing_columns(index, nb, pattern.trailing)], axis=1)
    kb = np.pad(k, ((0, 0), (0, 0), (0, pad + block), (0, 0))).reshape(b, h, nb + 1, block, -1)
    vb = np.pad(v, ((0, 0), (0, 0), (0, pad + block), (0, 0))).reshape(b, h, nb + 1, block, -1)
    width = index.shape[1] * block
    keys = kb[:, :, index].reshape(b, h, nb, width, -1)  # (B,H,nb,K·block,D)
    values = vb[:, :, index].reshape(b, h, nb, width, -1)
    qb = np.pad(q.astype(np.float64), ((0, 0), (0, 0), (0, pad), (0, 0))).reshape(b, h, nb, block, -1)
    scores = qb @ np.swapaxes(keys, -1, -2) * scale
    if softcap:
        scores = softcap * np.tanh(scores / softcap)
    bias = np.zeros((1, 1, 1, s)) if key_bias is None else np.broadcast_to(key_bias, (key_bias.shape[0], 1, 1, s))
    bias_blocks = np.pad(bias.astype(np.float64), ((0, 0), (0, 0), (0, 0), (0, pad + block)),
                         constant_values=MASKED).reshape(bias.shape[0], 1, nb + 1, block)
    scores = scores + bias_blocks[:, :, index].reshape(bias.shape[0], 1, nb, 1, width)
    i = np.arange(nb)[:, None, None] * block + np.arange(block)[None, :, None]  # (nb, block, 1)
    j = (index[:, :, None] * block + np.arange(block)[None, None, :]).reshape(nb, 1, width)
    allowed = pattern.allowed(NumpyGrid(s), i, j) & (j < s)
    if causal:
        allowed &= j <= i
    scores = np.where(allowed, scores, MASKED)
    out = (softmax(scores) @ values).reshape(b, h, nb * block, -1)[:, :, :s]
    rows = min(dense_rows * block, s)
    if rows:
        out[:, :, :rows] = dense_attention_rows(q[:, :, :rows], k, v, bias, scale, softcap, causal)
    start = max(nb - pattern.trailing, 0) * block
    if pattern.trailing:  # never causal (the pass leaves causal trailing blocks dense)
        out[:, :, start:] = dense_attention_rows(q[:, :, start:], k, v, bias, scale, softcap, False)
    return out.astype(q.dtype)


def trailing_columns(index: np.ndarray, nb: int, trailing: int) -> np.ndarray:
    """(nb, trailing): the input's last `trailing` blocks as more key blocks of every row; one a row
    already gathers (or before the first block) is redirected to the empty block nb, so no key is
    counted twice."""
    extra = np.broadcast_to(np.arange(nb - trailing, nb), (len(index), trailing))
    seen = (index[:, :, None] == extra[:, None, :]).any(axis=1)
    return np.where(seen | (extra < 0), nb, extra)


def layout_table(layout) -> tuple[tuple[int, ...], ...]:
    """For every query block, the key blocks it sees, padded with -1 to the longest row; a block the
    layout counts n times is listed n times, so the gather counts it n times."""
    counts = np.asarray(layout, np.int64)
    rows = [np.repeat(np.arange(len(row)), row) for row in counts]
    width = max((len(r) for r in rows), default=1)
    return tuple(tuple(int(x) for x in r) + (-1,) * (width - len(r)) for r in rows)


register("block_sparse_attention", (3, 4), banded_infer,
         lambda attrs, q, k, v, bias=None: [block_sparse_attention(
             q, k, v, bias, attrs["scale"], attrs["causal"], attrs.get("softcap", 0.0), attrs["pattern"],
             attrs["table"], attrs["dense_rows"])])
