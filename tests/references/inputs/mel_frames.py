"""Input layer `mel_frames` (Li et al. 2019's decoder pre-net; SpeechT5's): frames (B, T, mels) through linear +
ReLU layers and a linear projection (no dropout); with a speaker vector s, after the stack's positions,
relu([h; s/‖s‖] W + b) with W the (width + speaker, width) matrix whose two blocks the model stores apart."""
from __future__ import annotations

import numpy as np

from ..registry import INPUTS


@INPUTS.register("mel_frames")
class MelFrames:
    def source(self, feeds, prefix: str):
        """The stack's input: the frames so far, input_values (B, T, mels)."""
        return feeds[f"{prefix}input_values"]

    def embed(self, ref, options, scope: str, frames, token_types):
        x = frames.astype(np.float64)
        for i in range(options.prenet_layers):
            x = np.maximum(ref.linear(x, f"{scope}.prenet.layers.{i}", bias=True), 0.0)
        return ref.linear(x, f"{scope}.prenet.projection", bias=True)

    def after_positions(self, ref, options, scope: str, x, blocks):
        if not options.speaker_embedding:
            return x
        speaker = ref.feeds["speaker_embeddings"].astype(np.float64)
        unit = speaker / np.maximum(np.linalg.norm(speaker, axis=-1, keepdims=True), 1e-12)
        name = f"{scope}.speaker_projection"
        matrix = np.concatenate([ref.w[f"{name}.weight"], ref.w[f"{name}.speaker_weight"]])
        joined = np.concatenate([x, np.broadcast_to(unit[:, None], x.shape[:2] + unit.shape[-1:])], axis=-1)
        return np.maximum(joined @ matrix + ref.w[f"{name}.bias"], 0.0)
