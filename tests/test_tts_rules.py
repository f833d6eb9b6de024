"""Text-to-speech specs that cannot work are refused at compile time, at the line of the option that breaks
them: head frames the decoder does not read, kernels that would change the length, frames with no decoder to
read them."""
from __future__ import annotations

import pytest

from test_errors import check_fails

TTS = """tfc: 1
name: tts
topology: {topology}
model: {{width: 16, heads: 2, ffn_width: 24, vocab_size: 20, max_length: 32}}
input: {{kind: phonemes, convolutions: 1, kernel: {kernel}}}
positional: {{kind: scaled_sinusoidal, layout: interleaved}}
encoder: {{layers: 1}}
{decoder}
head: {{kind: spectrogram, mels: {head_mels}, postnet_layers: 2, postnet_channels: 8, postnet_kernel: {post_kernel}}}
"""
DECODER = "decoder: {layers: 1, input: {kind: mel_frames, mels: 6, prenet_units: 8}}"


@pytest.mark.parametrize("options, expected", [
    (dict(head_mels=5), ("spec.yaml:9:", "head.mels", "frames of 5 mels and the decoder reads frames of 6")),
    (dict(kernel=4), ("spec.yaml:5:", "kernel 4 must be odd")),
    (dict(post_kernel=2), ("spec.yaml:9:", "postnet_kernel 2 must be odd")),
    (dict(topology="encoder", decoder=""), ("has no decoder",))])
def test_tts_spec_is_refused_where_it_breaks(tmp_path, capsys, options, expected):
    fields = {**dict(topology="encoder-decoder", kernel=3, decoder=DECODER, head_mels=6, post_kernel=3), **options}
    check_fails(tmp_path, capsys, TTS.format(**fields), *expected)
