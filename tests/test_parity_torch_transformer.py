"""Parity with torch.nn.Transformer (post-norm encoder-decoder, the paper's architecture): the same
random weights mapped onto tfcompiler's canonical names, with causal and padding masks, padded batches.
Around it either the same token embedding (scaled by √d), sinusoidal positions and tied output
projection, or nothing at all: src and tgt vectors (input `vectors`) straight into nn.Transformer, or
through a torch.nn.Linear of their own, plus sinusoidal positions."""
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
    """The token embedding and nn.Transformer's parameters under tfcompiler's names ((in, out) matrices)."""
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return transformer_weights(p, {"embeddings.tokens.weight": p["embed.weight"]})


def transformer_weights(p: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``out`` plus the parameters of ``p``'s `transformer.*` (an nn.Transformer) under tfcompiler's names."""

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


def randomise_vectors(model: torch.nn.Module) -> None:
    """Random norm scales and biases too (torch starts them at 1 and 0), so a dropped one cannot hide."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() == 1:
                param.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(param.shape))


def torch_outputs(model, *inputs):
    """The module's outputs as NumPy, off torch's fast path (which zeroes padded encoder outputs)."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            outputs = model(*(torch.from_numpy(x) for x in inputs))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
    return [out.numpy() for out in outputs] if isinstance(outputs, tuple) else outputs.numpy()


def padded_masks(batch: int, src_len: int, tgt_len: int, pad: int):
    """All ones, but the first source row and the second target row end in `pad` padded positions."""
    src_mask, tgt_mask = np.ones((batch, src_len), np.int64), np.ones((batch, tgt_len), np.int64)
    if pad:
        src_mask[0, -pad:] = 0
        tgt_mask[1, -pad:] = 0
    return src_mask, tgt_mask


def assert_close(got, want, real, case):
    """Within 1e-4 relative to the output's scale at the real positions (`real`, (B, S))."""
    error = float(np.abs(got[real] - want[real]).max())
    assert error <= 1e-4 * max(1.0, float(np.abs(want[real]).max())), (case, error)


def test_torch_transformer_matches(tmp_path):
    torch.manual_seed(0)
    model = Seq2Seq().eval()
    randomise_vectors(model)
    save_file(canonical_weights(model), str(tmp_path / "w.safetensors"))
    compiled = compile_spec(parse_spec(SPEC), weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    rng = np.random.default_rng(0)
    for batch, src_len, tgt_len, pad in [(1, 7, 5, 0), (3, 12, 9, 3)]:
        src, tgt = rng.integers(0, VOCAB, (batch, src_len)), rng.integers(0, VOCAB, (batch, tgt_len))
        src_mask, tgt_mask = padded_masks(batch, src_len, tgt_len, pad)
        (got,) = session.run(None, {"input_ids": src, "attention_mask": src_mask,
                                    "decoder_input_ids": tgt, "decoder_attention_mask": tgt_mask})
        want = torch_outputs(model, src, tgt, src_mask.astype(bool), tgt_mask.astype(bool))
        error = float(np.abs(got - want).max())
        assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), (batch, src_len, tgt_len, error)


class VectorSeq2Seq(torch.nn.Module):
    """nn.Transformer on float src and tgt vectors: as they are (features 0), or each through a torch.nn.Linear
    of its own from `features` to the width, plus the sinusoidal table."""

    def __init__(self, features: int):
        super().__init__()
        self.features = features
        self.transformer = torch.nn.Transformer(D, HEADS, LAYERS, LAYERS, FFN, dropout=0.0, batch_first=True)
        if features:
            self.src_in, self.tgt_in = torch.nn.Linear(features, D), torch.nn.Linear(features, D)
            self.register_buffer("pe", torch.tensor(sinusoidal_table(MAX_LENGTH, D), dtype=torch.float32))

    def forward(self, src, tgt, src_mask, tgt_mask):
        if self.features:
            src, tgt = (linear(x) + self.pe[: x.shape[1]] for linear, x in ((self.src_in, src), (self.tgt_in, tgt)))
        causal = torch.ones(tgt.shape[1], tgt.shape[1], dtype=torch.bool).triu(1)  # True = hidden
        memory = self.transformer.encoder(src, src_key_padding_mask=~src_mask.bool())
        out = self.transformer.decoder(tgt, memory, tgt_mask=causal, tgt_key_padding_mask=~tgt_mask.bool(),
                                       memory_key_padding_mask=~src_mask.bool())
        return memory, out


def vector_spec(features: int):
    embedded = f"features: {features}" if features else ""
    positional = "{kind: sinusoidal, layout: interleaved}" if features else "none"
    return parse_spec(SPEC.replace("embedding: {scale: true, shared: true}", "embedding: {shared: false}")
                      .replace("head: {kind: lm, tied: true}", "head: {kind: none}")
                      .replace("positional: {kind: sinusoidal, layout: interleaved}",
                               f"input: {{kind: vectors, {embedded}}}\npositional: {positional}"))


@pytest.mark.parametrize("features", [0, 5], ids=["bare_vectors", "linear_embedding_and_positions"])
def test_torch_transformer_on_vectors_matches(features, tmp_path):
    """src and tgt are float vectors (inputs_embeds, decoder_inputs_embeds): nn.Transformer alone, or each
    side's own torch.nn.Linear (vectors.weight = its weight transposed) and sinusoidal positions first."""
    torch.manual_seed(1 + features)
    model = VectorSeq2Seq(features).eval()
    randomise_vectors(model)
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    start = {}
    if features:
        for stack, linear in (("encoder", "src_in"), ("decoder", "tgt_in")):
            start[f"{stack}.embeddings.vectors.weight"] = p[f"{linear}.weight"].T
            start[f"{stack}.embeddings.vectors.bias"] = p[f"{linear}.bias"]
    save_file(transformer_weights(p, start), str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compile_spec(vector_spec(features), weights=str(tmp_path / "w.safetensors"))
                                   .model.serialize())
    rng = np.random.default_rng(features)
    width = features or D
    for batch, src_len, tgt_len, pad in [(1, 7, 5, 0), (3, 12, 9, 3)]:
        src = rng.standard_normal((batch, src_len, width)).astype(np.float32)
        tgt = rng.standard_normal((batch, tgt_len, width)).astype(np.float32)
        src_mask, tgt_mask = padded_masks(batch, src_len, tgt_len, pad)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {
            "inputs_embeds": src, "attention_mask": src_mask, "decoder_inputs_embeds": tgt,
            "decoder_attention_mask": tgt_mask})))
        memory, out = torch_outputs(model, src, tgt, src_mask, tgt_mask)
        case = (features, batch, src_len, tgt_len)
        assert_close(got["encoder_last_hidden_state"], memory, src_mask.astype(bool), case)
        assert_close(got["last_hidden_state"], out, tgt_mask.astype(bool), case)


BARE_MODULE = f"""
tfc: 1
name: bare-attention
topology: {{topology}}
model: {{{{width: {D}, heads: {HEADS}, ffn_width: {D}, vocab_size: 1, max_length: {MAX_LENGTH}}}}}
input: {{{{kind: vectors}}}}
positional: none
block: {{{{placement: none, ffn: {{{{enabled: false}}}}}}}}
{{topology}}: {{{{layers: 1, final_norm: false}}}}
head: {{{{kind: none}}}}
"""


@pytest.mark.parametrize("topology", ["encoder", "decoder"])
def test_a_bare_module_spec_is_torch_multihead_attention(topology, tmp_path):
    """A spec of one attention sublayer alone (vectors in as they are, no residual, norm, FFN, positions
    or head) maps a module-level checkpoint 1:1: torch.nn.MultiheadAttention's self-attention, with its
    key padding mask and, for a decoder, its causal mask."""
    torch.manual_seed(3)
    module = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).eval()
    randomise_vectors(module)
    p = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    ours = f"{topology}.layers.0.attention"
    weights = {f"{ours}.output.weight": p["out_proj.weight"].T, f"{ours}.output.bias": p["out_proj.bias"]}
    for part, name in enumerate(("query", "key", "value")):
        rows = slice(part * D, (part + 1) * D)
        weights[f"{ours}.{name}.weight"] = p["in_proj_weight"][rows].T
        weights[f"{ours}.{name}.bias"] = p["in_proj_bias"][rows]
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    spec = parse_spec(BARE_MODULE.format(topology=topology))
    session = ort.InferenceSession(compile_spec(spec, weights=str(tmp_path / "w.safetensors"), cache=False)
                                   .model.serialize())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 11, D)).astype(np.float32)
    mask = np.ones((3, 11), np.int64)
    mask[0, -4:] = 0
    causal = torch.ones(11, 11, dtype=torch.bool).triu(1) if topology == "decoder" else None
    with torch.no_grad():
        want, _ = module(*(torch.from_numpy(x),) * 3, key_padding_mask=torch.from_numpy(mask == 0),
                         attn_mask=causal, need_weights=False)
    (got,) = session.run(None, {"inputs_embeds": x, "attention_mask": mask})
    assert_close(got, want.numpy(), mask.astype(bool), topology)
