"""Parity with lucidrains' compressive-transformer-pytorch: its CompressiveTransformer (pre-norm, GRU-gated
or added residuals, enhanced recurrence or not, GELU or GEGLU feed-forward, a segment memory and a
convolution-compressed memory per layer, no final norm) in eval mode against a decoder spec with `residual`,
`memory_states: normalized` and `recurrence`, the same weights, over three consecutive segments with the
memories fed back: the logits and every layer's memory and compressed memory.

Its positional table `pos_emb` (a learned key per head and key-window offset, shared by the layers) is the
`window_offset` scheme, copied into every layer. What is compared: whole segments of `seq_len` tokens and no
padding — the package updates its memories only after a whole segment, and its `mask` does not reach the
memories."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")
package = pytest.importorskip("compressive_transformer_pytorch")

D, HEADS, SEQ, MEM, CMEM, RATE, VOCAB, DEPTH = 32, 4, 8, 8, 4, 2, 50, 2
SPEC = """
tfc: 1
name: compressive
topology: decoder
model: {{width: {D}, heads: {HEADS}, ffn_width: {ffn}, vocab_size: {VOCAB}, max_length: 64}}
positional: {{kind: window_offset, segment: {SEQ}, length: {table}}}
block: {{placement: pre, residual: {residual}, ffn: {{activation: {activation}}}}}
decoder: {{layers: {DEPTH}, memory: {MEM}, compressed_memory: {{length: {CMEM}, rate: {RATE}}},
          memory_states: normalized, recurrence: {recurrence}, final_norm: false}}
head: {{kind: lm, tied: false, bias: true}}
"""


def canonical_weights(model) -> dict[str, np.ndarray]:
    """The package's parameters under tfcompiler's names: (in, out) matrices; to_kv split into key and
    value; the compressor's Conv1d (out, in, rate) as a linear map of a window's states concatenated; a GLU
    feed-forward's w1 split into gate and up."""
    p = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    weights = {"embeddings.tokens.weight": p["token_emb.weight"], "lm_head.weight": p["to_logits.1.weight"].T,
               "lm_head.bias": p["to_logits.1.bias"]}
    for i in range(DEPTH):
        ours, attn, ff = f"decoder.layers.{i}", f"attn_layers.{i}", f"ff_layers.{i}"
        key, value = np.split(p[f"{attn}.fn.fn.to_kv.weight"], 2)
        for name, weight in (("query", p[f"{attn}.fn.fn.to_q.weight"]), ("key", key), ("value", value)):
            weights[f"{ours}.attention.{name}.weight"] = weight.T
            weights[f"{ours}.attention.{name}.bias"] = np.zeros(D)  # the package's q, k, v have none
        conv = p[f"{attn}.fn.fn.compress_mem_fn.conv.weight"]  # (out, in, rate)
        weights.update({
            f"{ours}.attention.relative.key.weight": p["pos_emb"],
            f"{ours}.attention.output.weight": p[f"{attn}.fn.fn.to_out.weight"].T,
            f"{ours}.attention.output.bias": p[f"{attn}.fn.fn.to_out.bias"],
            f"{ours}.compress.weight": conv.transpose(2, 1, 0).reshape(RATE * D, D),
            f"{ours}.compress.bias": p[f"{attn}.fn.fn.compress_mem_fn.conv.bias"],
            f"{ours}.ffn.down.weight": p[f"{ff}.fn.fn.w2.weight"].T, f"{ours}.ffn.down.bias": p[f"{ff}.fn.fn.w2.bias"]})
        up, up_bias = p[f"{ff}.fn.fn.w1.weight"].T, p[f"{ff}.fn.fn.w1.bias"]
        if up.shape[1] == 2 * D * 4:  # ff_glu: w1 is [gate | up], the gate's half through GELU
            weights.update({f"{ours}.ffn.gate.weight": up[:, :4 * D], f"{ours}.ffn.gate.bias": up_bias[:4 * D]})
            up, up_bias = up[:, 4 * D:], up_bias[4 * D:]
        weights.update({f"{ours}.ffn.up.weight": up, f"{ours}.ffn.up.bias": up_bias})
        for sublayer, module in (("attention", attn), ("ffn", ff)):
            weights[f"{ours}.{sublayer}_norm.weight"] = p[f"{module}.fn.norm.weight"]
            weights[f"{ours}.{sublayer}_norm.bias"] = p[f"{module}.fn.norm.bias"]
            for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                if f"{module}.gru.{k}" in p:
                    weights[f"{ours}.{sublayer}_gru.{k}"] = p[f"{module}.gru.{k}"][None]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


@pytest.mark.parametrize("gru, enhanced, glu", [(True, True, False), (False, True, False), (True, False, False),
                                            (True, True, True)])
def test_segments_match_compressive_transformer_pytorch(gru, enhanced, glu, tmp_path):
    torch.manual_seed(0)
    model = package.CompressiveTransformer(num_tokens=VOCAB, dim=D, seq_len=SEQ, depth=DEPTH, mem_len=MEM,
                                           cmem_len=CMEM, cmem_ratio=RATE, heads=HEADS, gru_gated_residual=gru,
                                           enhanced_recurrence=enhanced, ff_glu=glu).eval()
    with torch.no_grad():  # norms, biases and pos_emb away from their ones and zeros
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    save_file(canonical_weights(model), str(tmp_path / "w.safetensors"))
    spec = parse_spec(SPEC.format(D=D, HEADS=HEADS, ffn=4 * D, VOCAB=VOCAB, DEPTH=DEPTH, MEM=MEM, CMEM=CMEM,
                                  RATE=RATE, SEQ=SEQ, table=SEQ + MEM + CMEM, residual="gru" if gru else "add",
                                  recurrence="enhanced" if enhanced else "standard",
                                  activation="geglu" if glu else "gelu"), "compressive.yaml")
    session = ort.InferenceSession(compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.serialize())
    names = [o.name for o in session.get_outputs()]
    ids = np.random.default_rng(0).integers(0, VOCAB, (2, 3 * SEQ))
    ours = {f"past_{kind}.{i}": np.zeros((2, 0, D), np.float32) for i in range(DEPTH)
            for kind in ("memories", "compressed_memories", "pending_memories")}
    theirs = None
    for start in range(0, 3 * SEQ, SEQ):
        segment = ids[:, start:start + SEQ]
        got = dict(zip(names, session.run(None, {"input_ids": segment, "attention_mask": np.ones_like(segment),
                                                  **ours})))
        with torch.no_grad():
            logits, theirs, _ = model(torch.from_numpy(segment), memories=theirs)
        np.testing.assert_allclose(got["logits"], logits.numpy(), atol=1e-4, rtol=0)
        for i in range(DEPTH):
            np.testing.assert_allclose(got[f"present_memories.{i}"], theirs.mem[i].numpy(), atol=1e-4, rtol=0)
            np.testing.assert_allclose(got[f"present_compressed_memories.{i}"], theirs.compressed_mem[i].numpy(),
                                       atol=1e-4, rtol=0)
            assert got[f"present_pending_memories.{i}"].shape[1] == 0  # evictions come in whole windows
        ours = {n.replace("present", "past"): v for n, v in got.items() if n.startswith("present")}
    assert theirs.compressed_mem.shape[2] == CMEM  # the last segment read a full compressed memory
