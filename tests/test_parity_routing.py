"""Parity with lucidrains' routing-transformer: its SelfAttention (routing heads only, no biases) in eval
mode against a bare-module spec of one `routing` attention, the same weights and centroids: plain, with
`shared_qk`, causal, and under its rotary positions (interleaved, values rotated too); the output and the
k-means commitment term it returns beside it, unpadded and padded (`padding_routing: content`: the package
routes padding by content like any token)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from references import Reference
from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")
routing_transformer = pytest.importorskip("routing_transformer.routing_transformer")

D, HEADS, HEAD_WIDTH, LENGTH, WINDOW = 16, 2, 8, 16, 4  # the package takes LENGTH / WINDOW = 4 clusters
COMMITMENT = 1e-4  # the package's default commitment_factor


def spec_text(causal: bool, shared_qk: bool, rotary: bool, padded: bool) -> str:
    stack = "decoder" if causal else "encoder"
    positional = "{kind: rope, layout: interleaved}" if rotary else "none"
    return f"""
tfc: 1
name: routing
topology: {stack}
model: {{width: {D}, heads: {HEADS}, head_width: {HEAD_WIDTH}, ffn_width: {D}, vocab_size: 1,
        max_length: {LENGTH}, bias: false}}
input: {{kind: vectors}}
positional: {positional}
block: {{placement: none, ffn: {{enabled: false}},
        attention: {{kind: routing, clusters: {LENGTH // WINDOW}, shared_qk: {str(shared_qk).lower()},
                    rotate_values: {str(rotary).lower()}, commitment_loss: {COMMITMENT},
                    padding_routing: {"content" if padded else "last"}}}}}
{stack}: {{layers: 1, final_norm: false}}
head: {{kind: none}}
"""


def package_module(causal: bool, shared_qk: bool, centroids: np.ndarray):
    """The package's attention sublayer in eval, its k-means centroids set (and marked initialised, so its
    first call does not fit them to the input)."""
    module = routing_transformer.SelfAttention(D, 1, LENGTH, HEADS, 0, WINDOW, dim_head=HEAD_WIDTH, causal=causal,
                                               shared_qk=shared_qk, commitment_factor=COMMITMENT).eval()
    kmeans = module.global_attn.kmeans
    kmeans.means.data.copy_(torch.from_numpy(centroids))
    kmeans.initted.data.copy_(torch.tensor(True))
    assert module.global_attn.num_mem_kv == 0  # memory keys (causal without shared_qk) have no counterpart
    return module


def canonical_weights(module, stack: str, centroids: np.ndarray) -> dict[str, np.ndarray]:
    """The package's projections under tfcompiler's names, as (in, out) matrices."""
    ours = f"{stack}.layers.0.attention"
    weights = {f"{ours}.centroids": centroids}
    for name, layer in (("query", module.to_q), ("key", getattr(module, "to_k", None)), ("value", module.to_v),
                        ("output", module.to_out)):
        if layer is not None:  # with shared_qk there is no key projection
            weights[f"{ours}.{name}.weight"] = layer.weight.detach().numpy().T
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


CASES = [(False, False, False), (False, False, True), (False, True, False), (True, True, False),
         (True, True, True)]


@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("causal, shared_qk, rotary", CASES,
                         ids=["encoder", "encoder-rotary", "encoder-shared_qk", "causal-shared_qk",
                              "causal-shared_qk-rotary"])
def test_routing_matches_routing_transformer(causal, shared_qk, rotary, padded, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    centroids = rng.standard_normal((HEADS, LENGTH // WINDOW, HEAD_WIDTH)).astype(np.float32)
    module = package_module(causal, shared_qk, centroids)
    stack = "decoder" if causal else "encoder"
    weights = canonical_weights(module, stack, centroids)
    save_file(weights, str(tmp_path / "w.safetensors"))
    spec = parse_spec(spec_text(causal, shared_qk, rotary, padded))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    x = rng.standard_normal((3, LENGTH, D)).astype(np.float32)
    mask = np.ones((3, LENGTH), np.int64)
    if padded:
        mask[0, -3:] = 0
        mask[1, -13:] = 0  # mostly padding: some centroid shows a real query no real key
        mask[2, -9:] = 0
    kwargs = {"input_mask": torch.from_numpy(mask == 1)} if padded else {}
    if rotary:
        kwargs["pos_emb"] = routing_transformer.FixedPositionalEmbedding(HEAD_WIDTH, LENGTH)(torch.from_numpy(x))
    with torch.no_grad():
        want_out, want_loss = (t.numpy() for t in module(torch.from_numpy(x), **kwargs))
    feeds = {"inputs_embeds": x, "attention_mask": mask}
    real = mask == 1  # what a padded query holds is left undefined
    # the compiled model and the NumPy reference (whose padded batch reaches the branches a short test misses)
    for got in (dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds))),
                Reference(spec, weights)(feeds)):
        np.testing.assert_allclose(got["last_hidden_state"][real], want_out[real], atol=1e-4, rtol=0)
        # the term is ~1e-4: compared relative to its size, or any small number would pass; both count padding
        np.testing.assert_allclose(got["routing_commitment_loss"], want_loss, rtol=1e-4, atol=0)
    assert want_loss > 0
