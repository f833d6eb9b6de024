"""Attention kind `nystrom`: Nyströmformer (Xiong et al. 2021), softmax(Q K̃ᵀ/√d) Z softmax(Q̃ Kᵀ/√d) V
with segment-mean landmarks Q̃, K̃ (segments of ⌈S/m⌉, over real tokens) and Z the Newton–Schulz
pseudo-inverse of softmax(Q̃ K̃ᵀ/√d) (Z₀ = Aᵀ / (max column sum · max row sum), per head or, as
Hugging Face's, over the whole batch), plus the per-head convolution of V along the sequence."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import repeat_kv, softmax
from ..registry import ATTENTION
from .linformer import real_keys
from .multi_head import MultiHead


def landmarks(x, keep, m: int):
    """(B, H, m, d) means of m segments of ⌈S/m⌉ rows over the real ones."""
    length = -(-x.shape[2] // m)
    out = np.zeros(x.shape[:2] + (m, x.shape[3]))
    for segment in range(m):
        rows = slice(segment * length, (segment + 1) * length)
        weights = np.broadcast_to(keep, x.shape[:1] + (1, x.shape[2], 1))[:, :, rows]
        out[:, :, segment] = (x[:, :, rows] * weights).sum(2) / np.maximum(weights.sum(2), 1)
    return out


@ATTENTION.register("nystrom")
class Nystrom(MultiHead):
    def attend(self, ref, q, k, v, site):
        options, d = site.options, q.shape[-1]
        k, v = repeat_kv(q, k, v)
        t, m = k.shape[2], options.landmarks
        keep = np.broadcast_to(real_keys(site.key_bias), (q.shape[0], 1, t, 1))
        q_marks, k_marks = landmarks(q, keep, m), landmarks(k, keep, m)
        kernel1 = softmax(q @ k_marks.swapaxes(-1, -2) / math.sqrt(d))
        a = softmax(q_marks @ k_marks.swapaxes(-1, -2) / math.sqrt(d))
        bias = 0.0 if site.key_bias is None else site.key_bias[:, None, None, :]
        kernel3 = softmax(q_marks @ k.swapaxes(-1, -2) / math.sqrt(d) + bias)
        if options.pinv_scale == "global":  # Hugging Face's: the largest column sum over the batch and heads
            z = a.swapaxes(-1, -2) / (np.abs(a).sum(-2).max() * np.abs(a).sum(-1).max())
        else:
            z = a.swapaxes(-1, -2) / (np.abs(a).sum(-2).max(-1)[..., None, None]
                                      * np.abs(a).sum(-1).max(-1)[..., None, None])
        eye = np.eye(m)
        for _ in range(options.pinv_iterations):
            az = a @ z
            z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
        out = kernel1 @ z @ (kernel3 @ v)
        if options.conv_kernel:
            kernel = ref.w[f"{site.name}.nystrom.conv.weight"][:, 0, :, 0]  # (H, k)
            half = options.conv_kernel // 2
            padded = np.pad(v * keep, ((0, 0), (0, 0), (half, half), (0, 0)))
            out = out + sum(padded[:, :, o:o + t] * kernel[None, :, o, None, None] for o in range(options.conv_kernel))
        return out
