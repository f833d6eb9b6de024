"""Input layer `patches` (ViT, Dosovitskiy et al. 2021): pixel_values (B, C, H, W) cut into P×P patches as a
Conv2d of kernel = stride = P computes them: out[b, i, j, o] = Σ_{c, y, x} pixels[b, c, i·P + y, j·P + x] ·
W[o, c, y, x] + bias[o], with W the stored (C·P·P, d) matrix read back as the conv's (d, C, P, P); the
patches row-major, times √d or a given scale, a learned class token and DeiT's distillation token in front
(each where the spec has it)."""
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
        return np.concatenate(tokens + [x], axis=1)
