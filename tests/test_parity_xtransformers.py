"""Parity with lucidrains' x-transformers (the `x-transformers` test extra): TransformerWrapper models
built from configs with random weights (gains and talking-heads matrices too), their weights mapped
onto tfcompiler's canonical names, compiled, and run on onnxruntime against the torch forward.

Covered: rotary positions (x-transformers rotates interleaved pairs) with grouped-query heads,
ALiBi (causal decoder; symmetric encoder, six heads), the T5 relative bias shared by all layers
(bidirectional and causal bucketing), pre- and post-softmax talking heads, residual attention
scores (RealFormer), and the causal sliding window (`max_attend_past`, lowered by the sparsity pass
to banded blocks). Mapping conventions, each a difference the mapping absorbs:
- nn.Linear weights are (out, in); ours are (in, out).
- x-transformers' LayerNorm has a gain and no bias (our norm biases are 0), stored with a unit
  offset: the gain is gamma + 1.
- grouped-query heads: x-transformers repeats key/value heads as `(r kvh)`, so query head r·Hkv + h
  reads kv head h; ours reads kv head j // (H/Hkv). Query heads (and the output projection's
  inputs) are permuted to match.
- the T5 bias is multiplied by √head_width in x-transformers (added to the scaled scores).
- talking heads are 1×1 convolutions over heads; pre-softmax is residual, sim + conv(sim), so our
  mixing matrix P (scores'[g] = Σ_h scores[h]·P[h, g]) is I + Wᵀ; post-softmax is Wᵀ.
- handed a padding `mask`, each attention zeroes its output at padded queries after the output
  projection (Attention.forward: `einx.where('b n, b n d, -> b n d', mask, out, 0.)`):
  `padded_queries: zero` on every spec, so padded positions are compared too.
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from conftest import whole_input
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import SpecError

torch = pytest.importorskip("torch")
x_transformers = pytest.importorskip("x_transformers")

VOCAB, WIDTH, LAYERS = 50, 32, 2
CASES = {  # name -> (stack, heads, kv_heads, head_width, x-transformers layer kwargs, our spec lines)
    "rotary_grouped_query": ("decoder", 4, 2, 8, dict(rotary_pos_emb=True, rotary_emb_dim=8, attn_kv_heads=2),
                             "positional: {kind: rope, layout: interleaved}"),
    "rotary_partial": ("decoder", 4, 4, 8, dict(rotary_pos_emb=True, rotary_emb_dim=4),
                       "positional: {kind: rope, layout: interleaved, rotary_dim: 4}"),
    "alibi_causal": ("decoder", 4, 4, 8, dict(alibi_pos_bias=True), "positional: alibi"),
    "alibi_symmetric_six_heads": ("encoder", 6, 6, 8, dict(alibi_pos_bias=True),
                                  "positional: {kind: alibi, form: symmetric}"),
    "t5_bias_encoder": ("encoder", 4, 4, 8, dict(rel_pos_bias=True, rel_pos_num_buckets=16, rel_pos_max_distance=20),
                        "positional: {kind: t5, num_buckets: 16, max_distance: 20}"),
    "t5_bias_decoder": ("decoder", 4, 4, 8, dict(rel_pos_bias=True, rel_pos_num_buckets=8, rel_pos_max_distance=10),
                        "positional: {kind: t5, num_buckets: 8, max_distance: 10}"),
    "talking_heads_residual_attention": (
        "decoder", 4, 4, 8, dict(alibi_pos_bias=True, attn_pre_talking_heads=True, attn_post_talking_heads=True,
                                 residual_attn=True),
        "positional: alibi\nblock: {attention: {talking_heads: both, residual_scores: true}}"),
    "sliding_window_causal": ("decoder", 4, 2, 8, dict(attn_max_attend_past=3, attn_kv_heads=2),
                              "positional: none\nblock: {attention: {kind: sliding_window, window: 3}}"),
    "talking_heads_pre_t5_encoder": (
        "encoder", 4, 4, 8, dict(rel_pos_bias=True, attn_pre_talking_heads=True, residual_attn=True),
        "positional: {kind: t5}\nblock: {attention: {talking_heads: pre, residual_scores: true}}"),
}


def build_x_model(case: str):
    stack, heads, kv_heads, head_width, options, _ = CASES[case]
    layers = (x_transformers.Decoder if stack == "decoder" else x_transformers.Encoder)(
        dim=WIDTH, depth=LAYERS, heads=heads, attn_dim_head=head_width, ff_no_bias=True, **options)
    model = x_transformers.TransformerWrapper(num_tokens=VOCAB, max_seq_len=64, use_abs_pos_emb=False,
                                              attn_layers=layers)
    generator = torch.Generator().manual_seed(len(case))
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if name.endswith("gamma") else 0.0
            scale = 0.2 if p.dim() == 1 or "talking_heads" in name else 1 / np.sqrt(p.shape[-1])
            p.copy_(base + scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def our_spec(case: str, padded_queries: str = "zero"):
    """x-transformers zeroes each attention's output at padded queries: `padded_queries: zero`."""
    stack, heads, kv_heads, head_width, _, lines = CASES[case]
    lines = lines.replace("block: {attention: {", f"block: {{attention: {{padded_queries: {padded_queries}, ")
    extra = "" if "block:" in lines else f"\nblock: {{attention: {{padded_queries: {padded_queries}}}}}"
    text = f"""
tfc: 1
name: {case}
topology: {stack}
model: {{width: {WIDTH}, heads: {heads}, kv_heads: {kv_heads}, head_width: {head_width}, ffn_width: {4 * WIDTH},
         vocab_size: {VOCAB}, max_length: 64, bias: false}}
{lines}{extra}
{stack}: {{layers: {LAYERS}, final_norm: true}}
head: {{kind: lm, tied: false}}
"""
    text = text.replace("block: {attention:",
                        "block: {placement: pre, norm: {epsilon: 1e-5}, ffn: {activation: gelu}, attention:")
    return parse_spec(text)


def mapped_weights(case: str, model) -> dict[str, np.ndarray]:
    stack, heads, kv_heads, head_width, _, _ = CASES[case]
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    for name, module in model.named_modules():  # norms store gain - 1 (unit offset)
        if hasattr(module, "gamma") and getattr(module, "unit_offset", False):
            sd[f"{name}.gamma"] = sd[f"{name}.gamma"] + np.float32(1.0)
    group = heads // kv_heads
    order = [r * kv_heads + h for h in range(kv_heads) for r in range(group)]  # our head j -> their head
    zeros = np.zeros(WIDTH, np.float32)
    w = {"embeddings.tokens.weight": sd["token_emb.emb.weight"], "lm_head.weight": sd["to_logits.weight"].T,
         f"{stack}.final_norm.weight": sd["attn_layers.final_norm.gamma"], f"{stack}.final_norm.bias": zeros}
    if "attn_layers.rel_pos.relative_attention_bias.weight" in sd:
        w[f"{stack}.relative_attention_bias.weight"] = \
            sd["attn_layers.rel_pos.relative_attention_bias.weight"] * np.float32(head_width ** 0.5)
    for i in range(LAYERS):
        attention, ffn, ours = f"attn_layers.layers.{2 * i}", f"attn_layers.layers.{2 * i + 1}", f"{stack}.layers.{i}"
        query = sd[f"{attention}.1.to_q.weight"].reshape(heads, head_width, WIDTH)[order].reshape(-1, WIDTH)
        output = sd[f"{attention}.1.to_out.weight"].reshape(WIDTH, heads, head_width)[:, order].reshape(WIDTH, -1)
        w.update({f"{ours}.attention.query.weight": query.T, f"{ours}.attention.output.weight": output.T,
                  f"{ours}.attention.key.weight": sd[f"{attention}.1.to_k.weight"].T,
                  f"{ours}.attention.value.weight": sd[f"{attention}.1.to_v.weight"].T,
                  f"{ours}.attention_norm.weight": sd[f"{attention}.0.0.gamma"], f"{ours}.attention_norm.bias": zeros,
                  f"{ours}.ffn_norm.weight": sd[f"{ffn}.0.0.gamma"], f"{ours}.ffn_norm.bias": zeros,
                  f"{ours}.ffn.up.weight": sd[f"{ffn}.1.ff.0.0.weight"].T,
                  f"{ours}.ffn.down.weight": sd[f"{ffn}.1.ff.2.weight"].T})
        for when, residual in (("pre", True), ("post", False)):
            key = f"{attention}.1.attend.{when}_softmax_talking_heads.weight"
            if key in sd:
                mixing = sd[key][:, :, 0, 0].T
                w[f"{ours}.attention.talking_heads.{when}"] = mixing + np.eye(heads, dtype=np.float32) * residual
    return w


def compiled(case: str, model, path, padded_queries: str = "zero") -> ort.InferenceSession:
    # safetensors writes a transposed view's buffer as is: make every array contiguous first
    save_file({k: np.ascontiguousarray(v) for k, v in mapped_weights(case, model).items()}, str(path))
    return ort.InferenceSession(compile_spec(our_spec(case, padded_queries), weights=str(path)).model.serialize())


def padded_batch(length: int, pads: tuple[int, ...], seed: int):
    """Token ids (B, length) and the mask of rows padded by `pads` tokens at their end."""
    ids = np.random.default_rng(seed).integers(0, VOCAB, (len(pads), length))
    mask = np.ones_like(ids)
    for row, pad in enumerate(pads):
        mask[row, length - pad:] = 0
    return ids, mask


def assert_close(got, want, what):
    error = float(np.abs(got - want).max())
    assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_x_transformers_matches(case, tmp_path):
    """Unpadded (no mask handed to x-transformers) and padded batches (its `mask`), every position
    compared, padded ones included."""
    model = build_x_model(case)
    session = compiled(case, model, tmp_path / "w.safetensors")
    for length, pads in ((7, (0, 0)), (12, (0, 0)), (7, (3, 0)), (12, (5, 11, 0))):
        ids, mask = padded_batch(length, pads, seed=length + len(pads))
        (got,) = session.run(["logits"], whole_input(session, {"input_ids": ids, "attention_mask": mask}))
        with torch.no_grad():
            masked = {"mask": torch.from_numpy(mask.astype(bool))} if (mask == 0).any() else {}
            want = model(torch.from_numpy(ids), **masked).numpy()
        assert_close(got, want, f"{case} at {length}, pads {pads}")


def test_x_transformers_padded_queries_are_its_convention(tmp_path):
    """The default (`padded_queries: attend`, a padded query attends as a real one) agrees at real tokens
    only: x-transformers' padded positions are its zeroed attention outputs, not another convention's."""
    case = "alibi_symmetric_six_heads"
    model = build_x_model(case)
    session = compiled(case, model, tmp_path / "w.safetensors", padded_queries="attend")
    ids, mask = padded_batch(12, (5, 0), seed=3)
    (got,) = session.run(["logits"], {"input_ids": ids, "attention_mask": mask})
    with torch.no_grad():
        want = model(torch.from_numpy(ids), mask=torch.from_numpy(mask.astype(bool))).numpy()
    real = mask.astype(bool)
    assert_close(got[real], want[real], f"{case}, real tokens")
    assert float(np.abs(got[~real] - want[~real]).max()) > 1e-2


def test_zeroed_padded_queries_are_refused_where_queries_are_pooled():
    """A pooling layer's queries are the pooled sequence, whose padding its block is not handed: the
    convention is refused at the attention's place in the spec, before anything is built."""
    with pytest.raises(SpecError, match="attention: padded_queries: zero is not written for stacks that resample"):
        parse_spec("""
tfc: 1
name: pooled
topology: encoder
model: {width: 32, heads: 4, ffn_width: 32, vocab_size: 10, max_length: 16}
block: {attention: {padded_queries: zero}}
encoder: {layers: 3, resample: {shorten_at: [1], upsample_at: 2}}
""", "pooled.yaml")
