"""Parity with lucidrains' performer-pytorch (the `performer-pytorch` test extra): PerformerLM models
(learned absolute positions, pre-LayerNorm blocks, GELU FFN, tied output embedding) with random
weights, their FAVOR+ projection matrices loaded as our `attention.projection` weights
(`projection: weights`), compiled and run on onnxruntime against the torch forward, bidirectional and
causal, on unpadded and right-padded batches.

performer-pytorch's conventions, each one of our kind's options (the paper's are the defaults):
- softmax_kernel adds ε = 1e-4 to each feature after its stabiliser (`kernel_epsilon: 1e-4`);
- a padding mask zeroes the padded keys' values only, so their features still count in the
  normaliser (`padded_keys: normaliser`);
- its causal linear attention adds 1e-6 to each feature of the running key sum in the normaliser
  (`normaliser_epsilon: 1e-6`); the bidirectional one adds nothing.
Its feature data normaliser (Dh^-1/4), ratio (m^-1/2) and stabilisers (a query's own maximum; the keys'
over every key, padded ones too, and every feature) are the ones we compute. It redraws the features
only while training (the models here are in eval mode).
Mapping conventions: nn.Linear weights are (out, in), ours (in, out); the output embedding is the
token embedding (tie_embed, our `tied: true`); every projection has a bias (qkv_bias, attn_out_bias).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from conftest import whole_input
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import WeightsError

torch = pytest.importorskip("torch")
performer_pytorch = pytest.importorskip("performer_pytorch")

VOCAB, WIDTH, HEADS, HEAD_WIDTH, FEATURES, LAYERS, MAX_LENGTH = 50, 32, 4, 8, 12, 2, 64
CONVENTIONS = {  # stack -> performer-pytorch's conventions as our options
    "encoder": "kernel_epsilon: 1e-4, padded_keys: normaliser",
    "decoder": "kernel_epsilon: 1e-4, padded_keys: normaliser, normaliser_epsilon: 1e-6",
}


def build_performer(stack: str):
    torch.manual_seed(len(stack))  # the projection matrices are drawn from torch's generator
    model = performer_pytorch.PerformerLM(
        num_tokens=VOCAB, max_seq_len=MAX_LENGTH, dim=WIDTH, depth=LAYERS, heads=HEADS, dim_head=HEAD_WIDTH,
        nb_features=FEATURES, causal=stack == "decoder", rotary_position_emb=False, tie_embed=True,
        qkv_bias=True, attn_out_bias=True)
    generator = torch.Generator().manual_seed(len(stack))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm.bias")):
                p.copy_(float(name.endswith("weight")) + 0.2 * torch.randn(p.shape, generator=generator))
            else:
                scale = 0.2 if p.dim() == 1 else 1 / np.sqrt(p.shape[-1])
                p.copy_(scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def our_spec(stack: str, conventions: str):
    return parse_spec(f"""
tfc: 1
name: performer_pytorch_{stack}
topology: {stack}
model: {{width: {WIDTH}, heads: {HEADS}, head_width: {HEAD_WIDTH}, ffn_width: {4 * WIDTH}, vocab_size: {VOCAB},
         max_length: {MAX_LENGTH}, bias: true}}
positional: learned
block: {{placement: pre, norm: {{epsilon: 1e-5}}, ffn: {{activation: gelu}},
        attention: {{kind: performer, features: {FEATURES}, projection: weights, {conventions}}}}}
{stack}: {{layers: {LAYERS}, final_norm: true}}
head: {{kind: lm, tied: true}}
""", f"performer_pytorch_{stack}.yaml")


def mapped_weights(stack: str, model) -> dict[str, np.ndarray]:
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    w = {"embeddings.tokens.weight": sd["token_emb.weight"], "embeddings.positions.weight": sd["pos_emb.emb.weight"],
         f"{stack}.final_norm.weight": sd["norm.weight"], f"{stack}.final_norm.bias": sd["norm.bias"]}
    for i in range(LAYERS):
        attention, ffn, ours = f"performer.net.layers.{i}.0", f"performer.net.layers.{i}.1", f"{stack}.layers.{i}"
        w[f"{ours}.attention.projection"] = sd[f"{attention}.fn.fast_attention.projection_matrix"]
        for theirs, name in (("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out", "output")):
            w[f"{ours}.attention.{name}.weight"] = sd[f"{attention}.fn.{theirs}.weight"].T
            w[f"{ours}.attention.{name}.bias"] = sd[f"{attention}.fn.{theirs}.bias"]
        for theirs, name in (("w1", "up"), ("w2", "down")):
            w[f"{ours}.ffn.{name}.weight"] = sd[f"{ffn}.fn.fn.{theirs}.weight"].T
            w[f"{ours}.ffn.{name}.bias"] = sd[f"{ffn}.fn.fn.{theirs}.bias"]
        for theirs, name in ((attention, "attention_norm"), (ffn, "ffn_norm")):
            for part in ("weight", "bias"):
                w[f"{ours}.{name}.{part}"] = sd[f"{theirs}.norm.{part}"]
    return w


def largest_error(stack: str, conventions: str, tmp_path) -> tuple[float, float]:
    """The largest error at real positions over unpadded and right-padded batches, and the largest
    output magnitude there."""
    model = build_performer(stack)
    weights = mapped_weights(stack, model)
    # safetensors writes a transposed view's buffer as is: make every array contiguous first
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(our_spec(stack, conventions), weights=str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    rng = np.random.default_rng(0)
    error, scale = 0.0, 1.0
    for length, pads in ((9, (0, 0)), (13, (0, 5)), (16, (3, 7))):
        ids = rng.integers(0, VOCAB, (2, length))
        mask = (np.arange(length)[None] < length - np.array(pads)[:, None]).astype(np.int64)
        (got,) = session.run(["logits"], whole_input(session, {"input_ids": ids, "attention_mask": mask}))
        with torch.no_grad():
            want = model(torch.from_numpy(ids), mask=torch.from_numpy(mask.astype(bool))).numpy()
        real = mask.astype(bool)  # a padded query's output is not defined
        error = max(error, float(np.abs(got[real] - want[real]).max()))
        scale = max(scale, float(np.abs(want[real]).max()))
    return error, scale


@pytest.mark.parametrize("stack", sorted(CONVENTIONS))
def test_performer_pytorch_matches(stack, tmp_path):
    error, scale = largest_error(stack, CONVENTIONS[stack], tmp_path)
    assert error <= 1e-4 * scale, f"{stack}: {error}"


def test_the_papers_conventions_are_not_performer_pytorchs(tmp_path):
    """The options are needed: with the paper's conventions a padded batch is off by far more than
    the tolerance (the padded keys leave the normaliser)."""
    error, scale = largest_error("encoder", "padded_keys: excluded", tmp_path)
    assert error > 1e-2 * scale, error


def test_the_projection_is_checked_like_every_weight(tmp_path):
    """A misshapen or missing `attention.projection` is refused by name before anything runs."""
    weights = mapped_weights("encoder", build_performer("encoder"))
    weights["encoder.layers.0.attention.projection"] = np.zeros((FEATURES, HEAD_WIDTH + 1), np.float32)
    del weights["encoder.layers.1.attention.projection"]
    save_file({k: np.ascontiguousarray(v) for k, v in weights.items()}, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError) as raised:
        compile_spec(our_spec("encoder", CONVENTIONS["encoder"]), weights=str(tmp_path / "w.safetensors"))
    assert f"encoder.layers.0.attention.projection: expected [{FEATURES}, {HEAD_WIDTH}]" in str(raised.value)
    assert "encoder.layers.1.attention.projection" in str(raised.value).split("missing")[1]
