"""Input layer `phonemes` (Li et al. 2019's text encoder pre-net): token ids looked up as `tokens`, then
`convolutions` Conv1d layers (odd kernel k, 'same' length: out[t, o] = b[o] + Σ_{tap, i} x[t + tap - k//2, i] ·
W[o, i, tap], zero outside the row's real positions) each followed by a ReLU, and a linear projection; with `norm`,
a LayerNorm after the stack's positions (SpeechT5's encoder layer_norm)."""
from __future__ import annotations

import numpy as np

from ..formulas import Norm
from ..registry import INPUTS
from .tokens import Tokens


def conv_same(x, weight, bias):
    """torch's Conv1d(padding=k//2) over x (B, S, Cin) read as (B, Cin, S): weight (Cout, Cin, k) -> (B, S, Cout)."""
    k, s = weight.shape[2], x.shape[1]
    padded = np.pad(x, ((0, 0), (k // 2, k // 2), (0, 0)))
    windows = np.stack([padded[:, tap:tap + s] for tap in range(k)])  # (k, B, S, Cin)
    return np.einsum("kbsi,oik->bso", windows, weight) + bias


def stack_mask(ref, scope: str):
    """The (B, S, 1) mask of real positions of the stack whose embeddings `scope` names."""
    prefix = "decoder_" if scope.startswith("decoder") and ref.spec.encoder is not None else ""
    return (ref.feeds[f"{prefix}attention_mask"] != 0)[..., None]


@INPUTS.register("phonemes")
class Phonemes(Tokens):
    def embed(self, ref, options, scope: str, ids, token_types):
        x = super().embed(ref, options, scope, ids, token_types).astype(np.float64)
        keep = stack_mask(ref, scope)
        for i in range(options.convolutions):
            name = f"{scope}.prenet.convolutions.{i}"
            x = np.maximum(conv_same(np.where(keep, x, 0.0), ref.w[f"{name}.weight"], ref.w[f"{name}.bias"]), 0.0)
        return ref.linear(x, f"{scope}.prenet.projection", bias=True) if options.convolutions else x

    def after_positions(self, ref, options, scope: str, x, blocks):
        if not options.norm:
            return x
        return ref.norm(x, Norm("layer_norm", blocks[0].norm.epsilon), f"{scope}.norm")
