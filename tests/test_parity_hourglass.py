"""Parity of the Hourglass (`resample` with `queries_only: false`) with lucidrains'
hourglass-transformer-pytorch (`HourglassTransformerLM`, the `hourglass-transformer-pytorch` test
extra) with the same weights, fp32 on onnxruntime: causal and not, attention resampling on and off,
naive (mean / repeat) and linear shortening and upsampling, lengths that are and are not multiples
of the shorten factor, padded batches included. It fills the sequence with zero states to whole
windows before its causal shift (`last_window: zero_filled`).

Its depth (1, 1, 1) is our three-layer stack `shorten_at: [1], upsample_at: 2`: pre_transformer,
valley_transformer and post_transformer are layers 0, 1, 2 (pre-norm LayerNorm blocks, GELU FFN of 4×
the width, queries and keys/values without a bias, so ours are zero), its learned positions and
token embeddings ours, its norm_out our final norm, to_logits an untied lm head with a bias. Its
attn_resampling_pre_valley / _post_valley (one-block Transformers) are `layers.1.shorten.*` and
`layers.2.upsample.*`; to_kv (2·H·Dh, D) is split in two, keys first; torch's (out, in) Linear
weights are transposed to our (in, out).

Where the two differ, the test compares where they agree and says why:
- 0.0.6 pads a length that is not a multiple of the shorten factor with `math.ceil` but never imports
  `math` (a NameError); the test gives its module the missing import;
- without a mask, its causal shift's zero states and its end padding are keys of the shortening
  attention; ours masks them (as it does with a mask): it is always handed the mask;
- a window of padding only: its pooled query weighs the window uniformly (every key masked alike),
  ours attends all of the window's states (a row with every key hidden is undefined in fused
  kernels). That state is a padded position of the valley, so only padded outputs differ: they are
  compared at real tokens only;
- nested hourglasses (depth (1, (1, 1, 1), 1)) upsample level by level, each level with its own
  residual and post layers; ours upsamples once from the deepest level: not compared.
"""
from __future__ import annotations

import math

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params

torch = pytest.importorskip("torch")
hourglass = pytest.importorskip("hourglass_transformer_pytorch")
package = pytest.importorskip("hourglass_transformer_pytorch.hourglass_transformer_pytorch")

TOLERANCE = 1e-4
WIDTH, HEADS, VOCAB, MAX_LENGTH, FACTOR = 32, 4, 50, 64, 2
SAMPLES = {"naive": ("mean", "repeat"), "linear": ("linear", "linear")}


def our_spec(causal: bool, attention: bool, updown: str):
    stack = "decoder" if causal else "encoder"
    pooling, upsampling = SAMPLES[updown]
    return parse_spec(f"""
tfc: 1
name: hourglass-parity
topology: {stack}
model: {{width: {WIDTH}, heads: {HEADS}, ffn_width: {4 * WIDTH}, vocab_size: {VOCAB}, max_length: {MAX_LENGTH}}}
positional: learned
block: {{placement: pre, ffn: {{activation: gelu}}}}
{stack}:
  layers: 3
  resample: {{shorten_at: [1], upsample_at: 2, stride: {FACTOR}, queries_only: false, pooling: {pooling},
             upsampling: {upsampling}, attention: {str(attention).lower()}, last_window: zero_filled}}
head: {{kind: lm, tied: false, bias: true}}
""", "hourglass-parity.yaml")


def package_model(causal: bool, attention: bool, updown: str, seed: int):
    torch.manual_seed(seed)
    model = hourglass.HourglassTransformerLM(num_tokens=VOCAB, dim=WIDTH, max_seq_len=MAX_LENGTH, depth=(1, 1, 1),
                                             shorten_factor=FACTOR, heads=HEADS, dim_head=WIDTH // HEADS,
                                             attn_resampling=attention, updown_sample_type=updown, causal=causal)
    with torch.no_grad():  # norms and biases start at 1 and 0: move them, so a dropped one shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.2 * torch.randn(p.shape))
    return model.eval()


def block_weights(block, prefix: str) -> dict[str, torch.Tensor]:
    """One [PreNormResidual(Attention), PreNormResidual(FeedForward)] pair, by our names under prefix."""
    attend, ffn = block
    key, value = attend.fn.to_kv.weight.chunk(2, dim=0)
    zero = torch.zeros(WIDTH)
    return {f"{prefix}.attention_norm.weight": attend.norm.weight, f"{prefix}.attention_norm.bias": attend.norm.bias,
            f"{prefix}.attention.query.weight": attend.fn.to_q.weight.T, f"{prefix}.attention.query.bias": zero,
            f"{prefix}.attention.key.weight": key.T, f"{prefix}.attention.key.bias": zero,
            f"{prefix}.attention.value.weight": value.T, f"{prefix}.attention.value.bias": zero,
            f"{prefix}.attention.output.weight": attend.fn.to_out.weight.T,
            f"{prefix}.attention.output.bias": attend.fn.to_out.bias,
            f"{prefix}.ffn_norm.weight": ffn.norm.weight, f"{prefix}.ffn_norm.bias": ffn.norm.bias,
            f"{prefix}.ffn.up.weight": ffn.fn[0].weight.T, f"{prefix}.ffn.up.bias": ffn.fn[0].bias,
            f"{prefix}.ffn.down.weight": ffn.fn[3].weight.T, f"{prefix}.ffn.down.bias": ffn.fn[3].bias}


def our_weights(model, stack: str) -> dict[str, np.ndarray]:
    hourglass_stack = model.transformer
    out = {"embeddings.tokens.weight": model.token_emb.weight, "embeddings.positions.weight": model.pos_emb.weight,
           f"{stack}.final_norm.weight": hourglass_stack.norm_out.weight,
           f"{stack}.final_norm.bias": hourglass_stack.norm_out.bias,
           "lm_head.weight": model.to_logits.weight.T, "lm_head.bias": model.to_logits.bias}
    for i, part in enumerate((hourglass_stack.pre_transformer, hourglass_stack.valley_transformer,
                              hourglass_stack.post_transformer)):
        out.update(block_weights(part.layers[0], f"{stack}.layers.{i}"))
    for resampling, prefix in ((hourglass_stack.attn_resampling_pre_valley, f"{stack}.layers.1.shorten"),
                               (hourglass_stack.attn_resampling_post_valley, f"{stack}.layers.2.upsample")):
        if resampling is not None:
            out.update(block_weights(resampling.layers[0], prefix))
    for sample, prefix in ((hourglass_stack.downsample, f"{stack}.layers.1.shorten"),
                           (hourglass_stack.upsample, f"{stack}.layers.2.upsample")):
        if hasattr(sample, "proj"):  # linear: (s·D) -> D and D -> (s·D), window-major as ours
            out.update({f"{prefix}.weight": sample.proj.weight.T, f"{prefix}.bias": sample.proj.bias})
    return {name: w.detach().numpy().astype(np.float32).copy() for name, w in out.items()}


@pytest.mark.parametrize("updown", ["naive", "linear"])
@pytest.mark.parametrize("attention", [True, False], ids=["attn_resampling", "no_attn_resampling"])
@pytest.mark.parametrize("causal", [True, False], ids=["causal", "bidirectional"])
def test_hourglass_matches_lucidrains(causal, attention, updown, tmp_path, monkeypatch):
    monkeypatch.setattr(package, "math", math, raising=False)  # 0.0.6's missing import (see above)
    spec, model = our_spec(causal, attention, updown), package_model(causal, attention, updown, seed=7)
    weights = our_weights(model, "decoder" if causal else "encoder")
    assert set(weights) == set(declared_params(build_graph(spec)))  # every weight mapped, none left over
    save_file(weights, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    rng = np.random.default_rng(5)
    for batch, length, pad in [(1, 8, 0), (2, 12, 3), (2, 7, 0), (3, 11, 4)]:
        ids = rng.integers(0, VOCAB, (batch, length))
        mask = np.ones((batch, length), np.int64)
        mask[0, length - pad:] = 0
        got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        with torch.no_grad():
            want = model(torch.from_numpy(ids), mask=torch.from_numpy(mask).bool()).numpy()
        real = mask.astype(bool)
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want[real]).max()))
        assert float(np.abs(got[real] - want[real]).max()) <= TOLERANCE * scale, (batch, length, pad)
