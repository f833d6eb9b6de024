"""Rotary position embedding (Su et al. 2021) as one canonical IR op.

rope(x (B, H, S, Dh), positions (1|B, S)): the first `rotary_dim` features of each head are taken as
pairs — (x[i], x[i + R/2]) in the half-split layout of GPT-NeoX / Llama, (x[2i], x[2i+1]) in the
interleaved layout of GPT-J — and each pair is rotated by the angle position · θ_i, with
θ_i = base^(-2i/R). `position_scale` multiplies positions first (linear scaling: 1/factor).
"""
from __future__ import annotations

import numpy as np

from .registry import OpTypeError, register


def rope_angles(positions: np.ndarray, rotary_dim: int, base: float, position_scale: float) -> np.ndarray:
    """(..., S) positions -> (..., S, R/2) angles, in float64."""
    inv_freq = base ** (-np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim)
    return (positions.astype(np.float64) * position_scale)[..., None] * inv_freq


def _infer(attrs, types):
    x, positions = types
    if x.rank != 4 or positions.rank != 2 or positions.dtype != "int64":
        raise OpTypeError(f"rope takes x (B,H,S,Dh) and int64 positions (B,S), got {x} and {positions}")
    rotary = attrs["rotary_dim"]
    if rotary % 2 or (isinstance(x.shape[3], int) and rotary > x.shape[3]):
        raise OpTypeError(f"rotary_dim {rotary} must be even and at most the head width {x.shape[3]}")
    return [x]


def _evaluate(attrs, x, positions):
    r = attrs["rotary_dim"]
    angles = rope_angles(positions, r, attrs["base"], attrs.get("position_scale", 1.0))[:, None]  # B,1,S,R/2
    cos, sin = np.cos(angles), np.sin(angles)
    rot, rest = x[..., :r].astype(np.float64), x[..., r:]
    if attrs["interleaved"]:
        a, b = rot[..., 0::2], rot[..., 1::2]
        out = np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(rot.shape)
    else:
        a, b = rot[..., : r // 2], rot[..., r // 2:]
        out = np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    return [np.concatenate([out.astype(x.dtype), rest], axis=-1)]


# rope(x, positions) attrs rotary_dim, base, interleaved, position_scale, max_positions (cache size)
register("rope", (2, 2), _infer, _evaluate)
