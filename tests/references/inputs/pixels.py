"""Input layer `pixels` (the Image Transformer, Parmar et al. 2018): an [H, W, C] image's intensities in raster order
(rows, pixels, channels), each channel with its own table of 256 embeddings (tensor2tensor stacks them in one
(256·C, d) table, channel c's at rows c·256 ..); times √d or a given scale. Channels as positions: position p is
channel p mod C. Channels as one embedding: a position is a pixel, its C embeddings concatenated and mapped to d by a
linear layer (the paper's 1×C window of stride C). The paper's coordinates, where the spec asks for them:
tensor2tensor's add_timing_signal_nd (sinusoidal; [sin | cos] of the row in the first half of d, of the position
within the row in the second, timescales 1 .. 10⁴ over d/4 frequencies) or add_positional_embedding_nd (learned: a
row's table plus a column's)."""
from __future__ import annotations

import numpy as np

from ..registry import INPUTS
from .tokens import scaled


def timing_signal(coordinate: np.ndarray, count: int) -> np.ndarray:
    """(n, 2·count): sin then cos of coordinate / timescale, timescales 10⁴^(k / (count - 1)) for k < count."""
    timescales = 1.0e4 ** (np.arange(count) / (count - 1))
    angles = coordinate[:, None].astype("float64") / timescales[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


@INPUTS.register("pixels")
class Pixels:
    def source(self, feeds, prefix: str):
        """The stack's input: intensities (B, S), or (B, S, C) pixels."""
        return feeds[f"{prefix}input_ids"]

    def embed(self, ref, options, scope: str, ids, token_types):
        spec, d = ref.spec, ref.spec.model.width
        _, width, channels = options.image
        table = ref.w[f"{scope}.intensities.weight"].astype("float64")
        per_channel = [table[c * 256:(c + 1) * 256] for c in range(channels)]
        length = ids.shape[1]
        if options.channels == "embedding":
            x = np.concatenate([scaled(spec, per_channel[c][ids[:, :, c]]) for c in range(channels)], axis=-1)
            x = x @ ref.w[f"{scope}.channels.weight"] + ref.w[f"{scope}.channels.bias"]
            row = width
        else:
            x = np.stack([scaled(spec, per_channel[p % channels][ids[:, p]]) for p in range(length)], axis=1)
            row = width * channels
        rows, columns = np.arange(length) // row, np.arange(length) % row
        if options.coordinates == "sinusoidal":
            signal = np.zeros((length, d))
            signal[:, :d // 4 * 2] = timing_signal(rows, d // 4)
            signal[:, d // 4 * 2:d // 4 * 4] = timing_signal(columns, d // 4)
            x = x + signal
        elif options.coordinates == "learned":
            x = x + ref.w[f"{scope}.rows.weight"][rows] + ref.w[f"{scope}.columns.weight"][columns]
        return x
