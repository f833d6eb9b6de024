"""Positional schemes `learned`, `sinusoidal`, `scaled_sinusoidal` and `none`: absolute positions
added to the embeddings. Sinusoids (Vaswani et al. 2017): PE(p, 2i) = sin(p / base^(2i/d)),
PE(p, 2i+1) = cos(p / base^(2i/d)), 'concatenated' putting all sines first, then all cosines
(tensor2tensor / fairseq); with `spacing: fairseq` the frequencies 1/base^(i/(d/2 - 1)) (fairseq's and
tensor2tensor's timescales), with `offset` the positions numbered from it; scaled: times a learned scalar
(Hua et al. 2022)."""
from __future__ import annotations

import numpy as np

from ..registry import POSITIONS
from .scheme import Scheme


def sinusoidal_table(length: int, width: int, layout: str = "interleaved", base: float = 10000.0,
                     spacing: str = "paper", offset: int = 0):
    p = np.arange(offset, offset + length)[:, None]
    i = np.arange(width // 2)[None, :]
    angle = p / base ** (2 * i / width if spacing == "paper" else i / max(width // 2 - 1, 1))
    table = np.zeros((length, width))
    if layout == "interleaved":
        table[:, 0::2], table[:, 1::2] = np.sin(angle), np.cos(angle)
    else:
        table[:, : width // 2], table[:, width // 2:] = np.sin(angle), np.cos(angle)
    return table


@POSITIONS.register("none")
class NoPositions(Scheme):
    pass


@POSITIONS.register("learned")
class Learned(Scheme):
    def embed(self, ref, options, x, scope, mask=None):
        return x + ref.w[f"{scope}.positions.weight"][:x.shape[1]]


@POSITIONS.register("sinusoidal")
class Sinusoidal(Scheme):
    def table(self, ref, options, length):
        m = ref.spec.model
        return sinusoidal_table(m.max_length, m.width, options.layout, options.base, options.spacing,
                                options.offset)[:length]

    def embed(self, ref, options, x, scope, mask=None):
        return x + self.table(ref, options, x.shape[1])


@POSITIONS.register("scaled_sinusoidal")
class ScaledSinusoidal(Sinusoidal):
    def embed(self, ref, options, x, scope, mask=None):
        return x + self.table(ref, options, x.shape[1]) * ref.w[f"{scope}.positions.scale"]
