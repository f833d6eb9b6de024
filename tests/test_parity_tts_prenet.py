"""Li et al. 2019's text encoder pre-net (the `phonemes` input) against torch.nn with the same weights: an
embedding, Conv1d + BatchNorm1d (eval mode, random running statistics) + ReLU layers and a linear projection,
compiled with each BatchNorm folded into its convolution and run on onnxruntime at fp32; rows padded at the end
match the same rows alone (the convolutions read zeros past a row's end)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")

SPEC = """
tfc: 1
name: tts-prenet
topology: encoder
model: {{width: 16, heads: 2, ffn_width: 8, vocab_size: 30, max_length: 32}}
input: {{kind: phonemes, convolutions: {convolutions}, kernel: {kernel}, channels: 12}}
positional: none
encoder: {{layers: 0}}
"""


def torch_prenet(convolutions: int, kernel: int, seed: int = 0):
    torch.manual_seed(seed)
    layers, width = [], 16
    for _ in range(convolutions):
        norm = torch.nn.BatchNorm1d(12)
        with torch.no_grad():
            norm.running_mean.normal_(0, 0.3), norm.running_var.uniform_(0.5, 1.5)
            norm.weight.normal_(1, 0.2), norm.bias.normal_(0, 0.2)
        layers += [torch.nn.Conv1d(width, 12, kernel, padding=kernel // 2), norm, torch.nn.ReLU()]
        width = 12
    return torch.nn.Embedding(30, 16), torch.nn.Sequential(*layers).eval(), torch.nn.Linear(12, 16)


def folded(conv, norm):
    """γ(Wx + b - μ)/√(σ² + ε) + β as one convolution."""
    gain = (norm.weight / torch.sqrt(norm.running_var + norm.eps)).detach()
    return ((conv.weight * gain[:, None, None]).detach().numpy(),
            (norm.bias + (conv.bias - norm.running_mean) * gain).detach().numpy())


@pytest.mark.parametrize("convolutions, kernel", [(3, 5), (1, 3)])
def test_encoder_prenet_matches_torch(tmp_path, convolutions, kernel):
    embedding, convs, projection = torch_prenet(convolutions, kernel)
    weights = {"embeddings.tokens.weight": embedding.weight.detach().numpy(),
               "embeddings.prenet.projection.weight": projection.weight.detach().numpy().T.copy(),
               "embeddings.prenet.projection.bias": projection.bias.detach().numpy()}
    for i in range(convolutions):
        weights[f"embeddings.prenet.convolutions.{i}.weight"], weights[f"embeddings.prenet.convolutions.{i}.bias"] = \
            folded(convs[3 * i], convs[3 * i + 1])
    save_file({k: np.ascontiguousarray(v, np.float32) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    spec = parse_spec(SPEC.format(convolutions=convolutions, kernel=kernel), "tts-prenet.yaml")
    session = ort.InferenceSession(compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.serialize())
    ids = np.random.default_rng(1).integers(0, 30, (3, 9))
    lengths = [9, 6, 2]
    mask = (np.arange(9)[None] < np.array(lengths)[:, None]).astype(np.int64)
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    for row, length in enumerate(lengths):  # each row alone, unpadded, through torch
        with torch.no_grad():
            x = embedding(torch.from_numpy(ids[row:row + 1, :length]))
            want = projection(convs(x.transpose(1, 2)).transpose(1, 2))[0].numpy()
        error = float(np.abs(got[row, :length] - want).max())
        assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), f"row {row}: {error}"
