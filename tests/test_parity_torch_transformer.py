"""Parity with torch.nn.Transformer (post-norm encoder-decoder, the paper's architecture): the same
random weights mapped onto tfcompiler's canonical names, the same token embedding (scaled by √d),
sinusoidal positions and tied output projection around it, with causal and padding masks."""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

from reference import sinusoidal_table

torch = pytest.importorskip("torch")

D, HEADS, FFN, VOCAB, MAX_LENGTH, LAYERS = 32, 4, 64, 57, 48, 2

SPEC = f"""
tfc: 1
name: torch-transformer
topology: encoder-decoder
model: {{width: {D}, heads: {HEADS}, ffn_width: {FFN}, vocab_size: {VOCAB}, max_length: {MAX_LENGTH}}}
positional: {{kind: sinusoidal, layout: interleaved}}
embedding: {{scale: true, shared: true}}
block: {{placement: post, norm: {{kind: layer_norm, epsilon: 1e-5}}, ffn: {{activation: relu}}}}
encoder: {{layers: {LAYERS}, final_norm: true}}    # nn.Transformer ends each stack with a LayerNorm
decoder: {{layers: {LAYERS}, final_norm: true}}
head: {{kind: lm, tied: true}}
"""


class Seq2Seq(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)
        self.transformer = torch.nn.Transformer(D, HEADS, LAYERS, LAYERS, FFN, dropout=0.0, batch_first=True)
        self.register_buffer("pe", torch.tensor(sinusoidal_table(MAX_LENGTH, D), dtype=torch.float32))

    def forward(self, src, tgt, src_mask, tgt_mask):
        def embed(ids):
            return self.embed(ids) * math.sqrt(D) + self.pe[: ids.shape[1]]

        causal = torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool).triu(1)  # True = hidden
        out = self.transformer(embed(src), embed(tgt), tgt_mask=causal, src_key_padding_mask=~src_mask,
                               tgt_key_padding_mask=~tgt_mask, memory_key_padding_mask=~src_mask)
        return out @ self.embed.weight.T


def canonical_weights(model: Seq2Seq) -> dict[str, np.ndarray]:
    """nn.Transformer's parameters under tfcompiler's names ((in, out) matrices)."""
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out = {"embeddings.tokens.weight": p["embed.weight"]}

    def attention(ours, theirs):
        for part, name in enumerate(("query", "key", "value")):
            rows = slice(part * D, (part + 1) * D)
            out[f"{ours}.{name}.weight"] = p[f"{theirs}.in_proj_weight"][rows].T
            out[f"{ours}.{name}.bias"] = p[f"{theirs}.in_proj_bias"][rows]
        out[f"{ours}.output.weight"] = p[f"{theirs}.out_proj.weight"].T
        out[f"{ours}.output.bias"] = p[f"{theirs}.out_proj.bias"]

    def copy(ours, theirs, transpose=False):
        out[f"{ours}.weight"] = p[f"{theirs}.weight"].T if transpose else p[f"{theirs}.weight"]
        out[f"{ours}.bias"] = p[f"{theirs}.bias"]

    for stack in ("encoder", "decoder"):
        norms = ["attention_norm", "ffn_norm"] if stack == "encoder" else \
            ["attention_norm", "cross_attention_norm", "ffn_norm"]
        for i in range(LAYERS):
            ours, theirs = f"{stack}.layers.{i}", f"transformer.{stack}.layers.{i}"
            attention(f"{ours}.attention", f"{theirs}.self_attn")
            if stack == "decoder":
                attention(f"{ours}.cross_attention", f"{theirs}.multihead_attn")
            copy(f"{ours}.ffn.up", f"{theirs}.linear1", transpose=True)
            copy(f"{ours}.ffn.down", f"{theirs}.linear2", transpose=True)
            for k, norm in enumerate(norms, start=1):
                copy(f"{ours}.{norm}", f"{theirs}.norm{k}")
        copy(f"{stack}.final_norm", f"transformer.{stack}.norm")
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def test_torch_transformer_matches(tmp_path):
    torch.manual_seed(0)
    model = Seq2Seq().eval()
    with torch.no_grad():  # random norms and biases too
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(param.shape))
    save_file(canonical_weights(model), str(tmp_path / "w.safetensors"))
    compiled = compile_spec(parse_spec(SPEC), weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    rng = np.random.default_rng(0)
    for batch, src_len, tgt_len, pad in [(1, 7, 5, 0), (3, 12, 9, 3)]:
        src, tgt = rng.integers(0, VOCAB, (batch, src_len)), rng.integers(0, VOCAB, (batch, tgt_len))
        src_mask, tgt_mask = np.ones((batch, src_len), np.int64), np.ones((batch, tgt_len), np.int64)
        if pad:
            src_mask[0, -pad:] = 0
            tgt_mask[1, -pad:] = 0
        (got,) = session.run(None, {"input_ids": src, "attention_mask": src_mask,
                                    "decoder_input_ids": tgt, "decoder_attention_mask": tgt_mask})
        fastpath = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)  # the fast path zeroes padded encoder outputs
        try:
            with torch.no_grad():
                want = model(torch.from_numpy(src), torch.from_numpy(tgt), torch.from_numpy(src_mask).bool(),
                             torch.from_numpy(tgt_mask).bool()).numpy()
        finally:
            torch.backends.mha.set_fastpath_enabled(fastpath)
        error = float(np.abs(got - want).max())
        assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), (batch, src_len, tgt_len, error)
