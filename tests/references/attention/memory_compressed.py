"""Attention kind `memory_compressed` (Liu et al. 2018): K' = Conv1d_{kernel s, stride s}(K), V'
likewise (grouped per head: one head's d channels mixed over s positions), padded keys zeroed and
the tail padded with zeros (the front with `padding: front`, lucidrains'); a compressed slot is hidden
when it holds no real key. In a decoder, slot c is seen once its last key c·s + s - 1 - p <= i (p the
zeros in front), behind a learned null key/value every query sees (in every stack with
`null_slot: always`). Scores scaled by 1/√d, or the option's `scale`."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, softmax
from ..registry import ATTENTION
from .multi_head import MultiHead


def compressed(q, k, v, key_bias, options, w, layer: str, causal: bool = False):
    b, h, t, d = k.shape
    s = options.compression
    keep = np.ones((b, t)) if key_bias is None else (key_bias == 0).astype(float)
    rows = -(-t // s)
    front = rows * s - t if options.padding == "front" else 0
    pads = ((0, 0), (front, rows * s - t - front))  # (batch, sequence) zeros

    def conv(x, name):
        weight, bias = w[f"{layer}.{name}_compression.weight"], w[f"{layer}.{name}_compression.bias"]
        x = np.pad(x * keep[:, None, :, None], ((0, 0), (0, 0), pads[1], (0, 0)))
        out = np.zeros((b, h, rows, d))
        for head in range(h):
            kernel = weight[head * d:(head + 1) * d]  # (out d, in d, s)
            for r in range(rows):
                window = x[:, head, r * s:(r + 1) * s]  # (B, s, d)
                out[:, head, r] = np.einsum("bsi,ois->bo", window, kernel) + bias[head * d:(head + 1) * d]
        return out

    k2, v2 = conv(k, "key"), conv(v, "value")
    slots = np.pad(keep, pads).reshape(b, rows, s).max(-1)
    hidden = np.where(slots > 0, 0.0, NEG)[:, None, None, :]  # (B, 1, 1, slots)
    if causal:
        late = (np.arange(rows)[None, :] * s + s - 1 - front) > np.arange(q.shape[2])[:, None]
        hidden = np.where(late, NEG, hidden)
    if causal or options.null_slot == "always":
        k2 = np.concatenate([np.broadcast_to(w[f"{layer}.null_key"], (b, h, 1, d)), k2], axis=2)
        v2 = np.concatenate([np.broadcast_to(w[f"{layer}.null_value"], (b, h, 1, d)), v2], axis=2)
        hidden = np.concatenate([np.zeros(hidden.shape[:-1] + (1,)), hidden], axis=-1)
    group = q.shape[1] // h
    k2, v2 = np.repeat(k2, group, axis=1), np.repeat(v2, group, axis=1)
    scale = options.scale if options.scale is not None else 1 / math.sqrt(d)
    return softmax(q @ k2.swapaxes(-1, -2) * scale + hidden) @ v2


@ATTENTION.register("memory_compressed")
class MemoryCompressed(MultiHead):
    def attend(self, ref, q, k, v, site):
        return compressed(q, k, v, site.key_bias, site.options, ref.w, site.name, site.causal)
