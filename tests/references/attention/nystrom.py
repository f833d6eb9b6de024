"""Attention kind `nystrom`: Nyströmformer (Xiong et al. 2021), softmax(Q K̃ᵀ/√d) Z softmax(Q̃ Kᵀ/√d) V
with segment-mean landmarks Q̃, K̃ (segments of ⌈S/m⌉, over real tokens; a segment without one is no
landmark) and Z the Newton–Schulz
pseudo-inverse of softmax(Q̃ K̃ᵀ/√d) (Z₀ = Aᵀ / (max column sum · max row sum), per head or, as
Hugging Face's, over the whole batch), plus the per-head convolution of V along the sequence.

The public implementations' conventions: `segments: front` cuts the sequence as if padded at the front
to m·⌈S/m⌉ (lucidrains); `empty_landmarks: uniform` keeps a segment without a real token as a landmark
whose row of softmax(Q̃ K̃ᵀ) is 1/m and whose row of softmax(Q̃ Kᵀ) weighs all m·⌈S/m⌉ positions alike,
padding with zero values (lucidrains' fully masked rows); `mask_padding: keys` counts padding as tokens
everywhere but as keys of softmax(Q̃ Kᵀ) (Hugging Face)."""
from __future__ import annotations

import math

import numpy as np

from ..formulas import NEG, repeat_kv, softmax
from ..registry import ATTENTION
from .linformer import real_keys
from .multi_head import MultiHead


def landmarks(x, keep, m: int, front: bool = False):
    """(B, H, m, d) means of m segments of ⌈S/m⌉ rows over the real ones, and (B, m) whether a segment
    holds a real row (one that holds none is no landmark). front: the segments of the sequence padded at
    the front to m·⌈S/m⌉ rows, whose first segments are short or empty."""
    length = -(-x.shape[2] // m)
    before = m * length - x.shape[2] if front else 0
    out, filled = np.zeros(x.shape[:2] + (m, x.shape[3])), np.zeros((x.shape[0], m), bool)
    for segment in range(m):
        rows = slice(max(segment * length - before, 0), max((segment + 1) * length - before, 0))
        weights = np.broadcast_to(keep, x.shape[:1] + (1, x.shape[2], 1))[:, :, rows]
        out[:, :, segment] = (x[:, :, rows] * weights).sum(2) / np.maximum(weights.sum(2), 1)
        filled[:, segment] = weights.sum((1, 2, 3)) > 0
    return out, filled


def kernels(q, k, v, keep, bias, q_marks, k_marks, real, uniform: bool):
    """One sample's softmax(Q K̃ᵀ), softmax(Q̃ K̃ᵀ) and softmax(Q̃ Kᵀ) V: over its real landmarks only, or
    over all m with the empty ones' rows uniform (lucidrains)."""
    scale = 1 / math.sqrt(q.shape[-1])
    if not uniform:
        qm, km = q_marks[:, real], k_marks[:, real]
        return (softmax(q @ km.swapaxes(-1, -2) * scale), softmax(qm @ km.swapaxes(-1, -2) * scale),
                softmax(qm @ k.swapaxes(-1, -2) * scale + bias) @ v)
    m, hidden = len(real), np.where(real, 0.0, NEG)
    a = np.where(real[:, None], softmax(q_marks @ k_marks.swapaxes(-1, -2) * scale + hidden), 1 / m)
    spread = (v * keep).sum(-2, keepdims=True) / (m * -(-k.shape[1] // m))
    mixed = np.where(real[:, None], softmax(q_marks @ k.swapaxes(-1, -2) * scale + bias) @ v, spread)
    return softmax(q @ k_marks.swapaxes(-1, -2) * scale + hidden), a, mixed


@ATTENTION.register("nystrom")
class Nystrom(MultiHead):
    def attend(self, ref, q, k, v, site):
        """Each sample with its real landmarks only (r of them): kernels (H, S, r), (H, r, r), (H, r, T)
        (or all m of them with `empty_landmarks: uniform`)."""
        options = site.options
        k, v = repeat_kv(q, k, v)
        t, m = k.shape[2], options.landmarks
        padding = site.key_bias is not None and options.mask_padding == "everywhere"
        keep = np.broadcast_to(real_keys(site.key_bias) if padding else 1.0, (q.shape[0], 1, t, 1))
        front = options.segments == "front"
        (q_marks, filled), (k_marks, _) = landmarks(q, keep, m, front), landmarks(k, keep, m, front)
        bias = np.zeros((q.shape[0], 1, 1, t)) if site.key_bias is None else site.key_bias[:, None, None, :]
        samples = [kernels(q[b], k[b], v[b], keep[b], bias[b], q_marks[b], k_marks[b], real,
                           options.empty_landmarks == "uniform") for b, real in enumerate(filled)]
        if options.pinv_scale == "global":  # Hugging Face's: the largest column and row sums over the batch
            scale = max(np.abs(a).sum(-2).max() for _, a, _ in samples) * max(np.abs(a).sum(-1).max()
                                                                               for _, a, _ in samples)
        out = np.zeros(q.shape[:3] + (v.shape[3],))
        for b, (kernel1, a, mixed) in enumerate(samples):
            if options.pinv_scale != "global":
                scale = np.abs(a).sum(-2).max(-1)[:, None, None] * np.abs(a).sum(-1).max(-1)[:, None, None]
            z, eye = a.swapaxes(-1, -2) / scale, np.eye(a.shape[-1])
            for _ in range(options.pinv_iterations):
                az = a @ z
                z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
            out[b] = kernel1 @ z @ mixed
        if options.conv_kernel:
            kernel = ref.w[f"{site.name}.nystrom.conv.weight"][:, 0, :, 0]  # (H, k)
            half = options.conv_kernel // 2
            padded = np.pad(v * keep, ((0, 0), (0, 0), (half, half), (0, 0)))
            out = out + sum(padded[:, :, o:o + t] * kernel[None, :, o, None, None] for o in range(options.conv_kernel))
        return out
