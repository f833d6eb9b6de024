"""Parity with lucidrains' isab-pytorch: its ISAB (learned latents attend the set, the set attends them,
no biases, no norms) against a bare-module spec of one `induced` attention with `latents_output`, the
same weights, padded sets included; both of ISAB's returns, the output and the induced latents."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")
isab_pytorch = pytest.importorskip("isab_pytorch")

D, HEADS, HEAD_WIDTH, LATENTS = 24, 4, 64, 5  # isab-pytorch's heads are 64 wide whatever the width

SPEC = f"""
tfc: 1
name: isab
topology: encoder
model: {{width: {D}, heads: {HEADS}, head_width: {HEAD_WIDTH}, ffn_width: {D}, vocab_size: 1, max_length: 32,
        bias: false}}
input: {{kind: vectors}}
positional: none
block: {{placement: none, ffn: {{enabled: false}},
        attention: {{kind: induced, points: {LATENTS}, latents_output: true}}}}
encoder: {{layers: 1, final_norm: false}}
head: {{kind: none}}
"""


def canonical_weights(module) -> dict[str, np.ndarray]:
    """ISAB's parameters under tfcompiler's names: (in, out) matrices; to_kv splits into key and value."""
    p = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    ours = "encoder.layers.0.attention"
    weights = {f"{ours}.inducing_points": p["latents"][None]}
    for hop, attention in (("induce", "attn1"), ("broadcast", "attn2")):
        key, value = np.split(p[f"{attention}.to_kv.weight"], 2)
        for name, weight in (("query", p[f"{attention}.to_q.weight"]), ("key", key), ("value", value),
                             ("output", p[f"{attention}.to_out.weight"])):
            weights[f"{ours}.{hop}.{name}.weight"] = weight.T
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


def test_isab_matches_isab_pytorch(tmp_path):
    torch.manual_seed(0)
    module = isab_pytorch.ISAB(dim=D, heads=HEADS, num_latents=LATENTS).eval()
    save_file(canonical_weights(module), str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compile_spec(parse_spec(SPEC), weights=str(tmp_path / "w.safetensors"))
                                   .model.serialize())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 9, D)).astype(np.float32)
    mask = np.ones((3, 9), np.int64)
    mask[0, -3:] = 0
    mask[2, -7:] = 0
    with torch.no_grad():
        want_out, want_latents = (t.numpy() for t in module(torch.from_numpy(x), mask=torch.from_numpy(mask == 1)))
    got = dict(zip([o.name for o in session.get_outputs()],
                   session.run(None, {"inputs_embeds": x, "attention_mask": mask})))
    # every set element attends the latents (ISAB does not hide padded queries): all positions compare
    np.testing.assert_allclose(got["last_hidden_state"], want_out, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got["induced_latents.0"], want_latents, atol=1e-4, rtol=0)
