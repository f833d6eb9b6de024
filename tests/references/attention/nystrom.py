"""Attention kind `nystrom`: Nyströmformer (Xiong et al. 2021), softmax(Q K̃ᵀ/√d) Z softmax(Q̃ Kᵀ/√d) V
with segment-mean landmarks Q̃, K̃ (segments of ⌈S/m⌉, over real tokens; a segment without one is no
landmark) and Z the Newton–Schulz
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
    """(B, H, m, d) means of m segments of ⌈S/m⌉ rows over the real ones, and (B, m) whether a segment
    holds a real row (one that holds none is no landmark)."""
    length = -(-x.shape[2] // m)
    out, filled = np.zeros(x.shape[:2] + (m, x.shape[3])), np.zeros((x.shape[0], m), bool)
    for segment in range(m):
        rows = slice(segment * length, (segment + 1) * length)
        weights = np.broadcast_to(keep, x.shape[:1] + (1, x.shape[2], 1))[:, :, rows]
        out[:, :, segment] = (x[:, :, rows] * weights).sum(2) / np.maximum(weights.sum(2), 1)
        filled[:, segment] = weights.sum((1, 2, 3)) > 0
    return out, filled


@ATTENTION.register("nystrom")
class Nystrom(MultiHead):
    def attend(self, ref, q, k, v, site):
        """Each sample with its real landmarks only (r of them): kernels (H, S, r), (H, r, r), (H, r, T)."""
        options, d = site.options, q.shape[-1]
        k, v = repeat_kv(q, k, v)
        t, m = k.shape[2], options.landmarks
        keep = np.broadcast_to(real_keys(site.key_bias), (q.shape[0], 1, t, 1))
        (q_marks, filled), (k_marks, _) = landmarks(q, keep, m), landmarks(k, keep, m)
        bias = 0.0 if site.key_bias is None else site.key_bias[:, None, None, :]
        samples = []
        for b, real in enumerate(filled):
            qm, km = q_marks[b][:, real], k_marks[b][:, real]
            samples.append((softmax(q[b] @ km.swapaxes(-1, -2) / math.sqrt(d)),
                            softmax(qm @ km.swapaxes(-1, -2) / math.sqrt(d)),
                            softmax(qm @ k[b].swapaxes(-1, -2) / math.sqrt(d) + (bias if np.isscalar(bias)
                                                                                  else bias[b]))))
        if options.pinv_scale == "global":  # Hugging Face's: the largest column and row sums over the batch
            scale = max(np.abs(a).sum(-2).max() for _, a, _ in samples) * max(np.abs(a).sum(-1).max()
                                                                               for _, a, _ in samples)
        out = np.zeros(q.shape[:3] + (v.shape[3],))
        for b, (kernel1, a, kernel3) in enumerate(samples):
            if options.pinv_scale != "global":
                scale = np.abs(a).sum(-2).max(-1)[:, None, None] * np.abs(a).sum(-1).max(-1)[:, None, None]
            z, eye = a.swapaxes(-1, -2) / scale, np.eye(a.shape[-1])
            for _ in range(options.pinv_iterations):
                az = a @ z
                z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
            out[b] = kernel1 @ z @ (kernel3 @ v[b])
        if options.conv_kernel:
            kernel = ref.w[f"{site.name}.nystrom.conv.weight"][:, 0, :, 0]  # (H, k)
            half = options.conv_kernel // 2
            padded = np.pad(v * keep, ((0, 0), (0, 0), (half, half), (0, 0)))
            out = out + sum(padded[:, :, o:o + t] * kernel[None, :, o, None, None] for o in range(options.conv_kernel))
        return out
