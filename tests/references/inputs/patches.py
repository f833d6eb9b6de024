"""Input layer `patches` (ViT, Dosovitskiy et al. 2021): pixel_values (B, C, H, W) cut into P×P patches as a
Conv2d of kernel = stride = P computes them: out[b, i, j, o] = Σ_{c, y, x} pixels[b, c, i·P + y, j·P + x] ·
W[o, c, y, x] + bias[o], with W the stored (C·P·P, d) matrix read back as the conv's (d, C, P, P); the
patches row-major, times √d or a given scale, a learned class token and DeiT's distillation token in front
(each where the spec has it); with `position_grid`, the input's own learned positions resized to the image's grid
(see `resized`)."""
from __future__ import annotations

import numpy as np

from ..registry import INPUTS
from .tokens import scaled


@INPUTS.register("patches")
class Patches:
    def source(self, feeds, prefix: str):
        """The stack's input: pixel_values (B, C, H, W)."""
        return feeds["pixel_values"]

    def embed(self, ref, options, scope: str, pixels, token_types):
        p, d = options.patch_size, ref.spec.model.width
        conv = ref.w[f"{scope}.patches.weight"].T.reshape(d, options.channels, p, p).astype("float64")
        b, _, h, w = pixels.shape
        x = np.zeros((b, h // p, w // p, d))
        for i in range(h // p):
            for j in range(w // p):
                window = pixels[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].astype("float64")
                x[:, i, j] = np.einsum("bcyx,ocyx->bo", window, conv)
        x = scaled(ref.spec, x.reshape(b, -1, d) + ref.w[f"{scope}.patches.bias"])
        in_front = [name for name in ("class_token", "distillation_token") if getattr(options, name)]
        tokens = [np.repeat(ref.w[f"{scope}.{name}"].astype("float64"), b, axis=0) for name in in_front]
        x = np.concatenate(tokens + [x], axis=1)
        if options.position_grid:
            x = x + resized(ref.w[f"{scope}.positions.weight"].astype("float64"), len(tokens), options.position_grid,
                            h // p)
        return x


def keys(x: float, a: float = -0.75) -> float:
    """Keys' cubic convolution kernel, torch's a."""
    x = abs(x)
    if x <= 1:
        return (a + 2) * x ** 3 - (a + 3) * x ** 2 + 1
    return a * x ** 3 - 5 * a * x ** 2 + 8 * a * x - 4 * a if x < 2 else 0.0


def resized(table, front: int, grid_in: int, grid_out: int):
    """Hugging Face's interpolate_pos_encoding: the front rows kept, the (grid_in, grid_in) grid of rows resized to
    (grid_out, grid_out) by torch's bicubic with align_corners=False, one axis then the other (edges clamped)."""
    def along(grid, axis):
        out = []
        for o in range(grid_out):
            source = (o + 0.5) * grid_in / grid_out - 0.5
            taps = range(int(np.floor(source)) - 1, int(np.floor(source)) + 3)
            out.append(sum(keys(source - tap) * np.take(grid, min(max(tap, 0), grid_in - 1), axis=axis)
                           for tap in taps))
        return np.stack(out, axis=axis)
    grid = table[front:].reshape(grid_in, grid_in, -1)
    return np.concatenate([table[:front], along(along(grid, 0), 1).reshape(grid_out ** 2, -1)])
