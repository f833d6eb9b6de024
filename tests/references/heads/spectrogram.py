"""Head `spectrogram` (Li et al. 2019's mel linear, stop-token linear and convolutional post-net; SpeechT5's
speech-decoder post-net): per decoder state s, r frames h_s W + b (frame s·r + j is the j-th block of `mels`) and
r stop logits; the spectrogram is the frames plus the post-net's correction, Conv1d layers ('same' length, zero
padding at both ends of the whole sequence) with tanh after each but the last."""
from __future__ import annotations

import numpy as np

from ..inputs.phonemes import conv_same
from ..registry import HEADS


@HEADS.register("spectrogram")
class Spectrogram:
    def outputs(self, ref, head, x, mask):
        name, (b, s) = "speech_decoder_postnet", x.shape[:2]
        before = ref.linear(x, f"{name}.feat_out", bias=True).reshape(b, s * head.reduction, head.mels)
        stop = ref.linear(x, f"{name}.prob_out", bias=True).reshape(b, s * head.reduction)
        y = before
        for i in range(head.postnet_layers):
            y = conv_same(y, ref.w[f"{name}.layers.{i}.weight"], ref.w[f"{name}.layers.{i}.bias"])
            y = y if i == head.postnet_layers - 1 else np.tanh(y)
        return {"outputs_before_postnet": before, "stop_logits": stop, "spectrogram": before + y}
