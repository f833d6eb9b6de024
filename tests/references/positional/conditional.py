"""Positional scheme `conditional`: CPVT's position generator (Chu et al. 2021), x plus the
depth-wise k×k convolution of the tokens laid on a (rows, grid_width) grid, zero padded (padded tokens
read as zeros too), class tokens untouched."""
from __future__ import annotations

import numpy as np

from ..registry import POSITIONS
from .scheme import Scheme


@POSITIONS.register("conditional")
class Conditional(Scheme):
    def embed(self, ref, options, x, scope, mask=None):
        name = f"{scope}.position_generator"
        c, w, kernel = options.class_tokens, options.grid_width, options.kernel
        weight, bias = ref.w[f"{name}.weight"], ref.w[f"{name}.bias"]
        tokens = x if mask is None else x * (mask != 0)[..., None]
        grid = tokens[:, c:].reshape(x.shape[0], -1, w, x.shape[2])
        rows, half = grid.shape[1], kernel // 2
        out = np.zeros_like(grid) + bias
        for r in range(rows):
            for col in range(w):
                for a in range(-half, half + 1):
                    for bb in range(-half, half + 1):
                        if 0 <= r + a < rows and 0 <= col + bb < w:
                            out[:, r, col] += grid[:, r + a, col + bb] * weight[:, 0, a + half, bb + half]
        return x + np.concatenate([np.zeros_like(x[:, :c]), out.reshape(x.shape[0], -1, x.shape[2])], 1)
