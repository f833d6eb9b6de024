"""Parity of the `nystrom` attention kind with lucidrains' nystrom-attention (`NystromAttention`, the
`nystrom-attention` test extra) and Hugging Face's NystromformerModel (through `tfc import-hf`), each
with the same weights, fp32 on onnxruntime (lucidrains' cases through the IR's NumPy interpreter too),
padded batches included.

lucidrains' module is compared bare: a spec of one block with no residual, norm or FFN (`placement:
none`, `ffn: {enabled: false}`), no positions and no final norm computes exactly the attention sublayer
of its token embeddings, so each input row x becomes a row of the embedding table, read by ids
0..B·S-1. Its weights map as: to_qkv (3·H·Dh, D), split in three, transposed to our (D, H·Dh) query,
key and value (their biases 0: to_qkv has none); to_out's Linear transposed, with its bias; res_conv's
(H, 1, k, 1) as is. Its conventions are options of the kind: it pads the front to a multiple of the
landmark count (`segments: front`), a segment of padding only keeps a uniform row (`empty_landmarks:
uniform`) and Z₀'s scale is the batch's largest (`pinv_scale: global`).

Where the two definitions differ, the test compares where they agree and says why:
- without a mask, lucidrains' front padding is zero vectors that are keys of its last softmax and count
  in the first landmark's mean, so the real tokens' outputs depend on how many it added; it is handed an
  all-true mask when the length is not a multiple of the landmark count (its padding is then masked);
- a padded query's output (lucidrains masks its whole row, so it attends every landmark alike; ours
  attends the real ones) is compared at real tokens only, as every kind's padded queries are.

Hugging Face runs only at segment_means_seq_len tokens (a multiple of the landmarks), so its cases are
unpadded and padded batches at that length; the importer writes its conventions (`pinv_scale: global`,
`mask_padding: keys`: its landmarks and convolution read padding as tokens), so every position, padded
ones included, is compared. transformers 5.25's NystromformerModel.forward builds a (B, 1, S, S) mask that
its Nyström branch cannot add to its (B, H, m, S) scores (a padded batch raises), so a padded batch runs
its embeddings and encoder with the (B, 1, 1, S) additive mask that branch was written for (transformers
4's get_extended_attention_mask).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import yaml
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import SpecError
from tfcompiler.ir.interpret import evaluate

torch = pytest.importorskip("torch")
nystrom_attention = pytest.importorskip("nystrom_attention")
transformers = pytest.importorskip("transformers")

from test_parity_hf import import_and_compile, randomise  # noqa: E402  (after the skips: it needs transformers)

TOLERANCE = 1e-4
WIDTH, HEADS, HEAD_WIDTH, LANDMARKS, KERNEL = 32, 4, 16, 8, 5
LUCIDRAINS = "segments: front, empty_landmarks: uniform, pinv_scale: global"


def bare_spec(conventions: str, vocab: int):
    """One nystrom attention sublayer over the embeddings, nothing else."""
    return parse_spec(f"""
tfc: 1
name: bare-nystrom
topology: encoder
model: {{width: {WIDTH}, heads: {HEADS}, head_width: {HEAD_WIDTH}, ffn_width: {WIDTH}, vocab_size: {vocab},
        max_length: 64}}
positional: none
block:
  placement: none
  attention: {{kind: nystrom, landmarks: {LANDMARKS}, pinv_iterations: 6, conv_kernel: {KERNEL}, {conventions}}}
  ffn: {{enabled: false}}
encoder: {{layers: 1, final_norm: false}}
""", "bare-nystrom.yaml")


def lucidrains_module(seed: int):
    torch.manual_seed(seed)
    module = nystrom_attention.NystromAttention(dim=WIDTH, dim_head=HEAD_WIDTH, heads=HEADS, num_landmarks=LANDMARKS,
                                                pinv_iterations=6, residual=True, residual_conv_kernel=KERNEL)
    with torch.no_grad():  # its conv starts at zero-mean noise of a small scale: make it count
        module.res_conv.weight.copy_(0.3 * torch.randn(module.res_conv.weight.shape))
    return module.eval()


def lucidrains_weights(module, x) -> dict[str, np.ndarray]:
    """Our canonical names for the module's weights, and x as the embedding table (row b·S + i)."""
    state = {name: p.detach().numpy() for name, p in module.state_dict().items()}
    inner = HEADS * HEAD_WIDTH
    query, key, value = np.split(state["to_qkv.weight"], 3, axis=0)
    site = "encoder.layers.0.attention"
    weights = {"embeddings.tokens.weight": x.reshape(-1, WIDTH),
               f"{site}.nystrom.conv.weight": state["res_conv.weight"],
               f"{site}.output.weight": state["to_out.0.weight"].T, f"{site}.output.bias": state["to_out.0.bias"]}
    for name, matrix in (("query", query), ("key", key), ("value", value)):
        weights[f"{site}.{name}.weight"], weights[f"{site}.{name}.bias"] = matrix.T, np.zeros(inner)
    return {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in weights.items()}


def compiled_bare(conventions: str, weights: dict, path):
    """The onnxruntime session of the bare spec, and its IR (whose NumPy interpreter is checked too)."""
    save_file(weights, str(path))
    compiled = compile_spec(bare_spec(conventions, len(weights["embeddings.tokens.weight"])), weights=str(path))
    return ort.InferenceSession(compiled.model.serialize()), compiled.graph


def assert_close(got, want, what):
    error = float(np.abs(got - want).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


# (batch, length, padded tokens at the end of each row, hand lucidrains a mask even when nothing is padded)
LUCIDRAINS_CASES = {
    "multiple_unpadded": (2, 32, (0, 0), False),  # 8 segments of 4, no mask at all
    "not_a_multiple": (2, 9, (0, 0), True),  # front padding of 7: three segments of padding only
    "not_a_multiple_13": (1, 13, (0,), True),  # front padding of 3: one segment of padding, one of a token
    # row 0's last segment is all padding, row 1's last one and a half, row 2 has none
    "padded_multiple": (3, 32, (4, 6, 0), True),
    "padded_not_a_multiple": (2, 13, (5, 0), True),  # row 0: the first segment and the last two all padding
}


@pytest.mark.parametrize("case", sorted(LUCIDRAINS_CASES))
def test_lucidrains_nystrom_attention_matches(case, tmp_path):
    batch, length, pads, masked = LUCIDRAINS_CASES[case]
    module = lucidrains_module(seed=length + batch)
    x = np.random.default_rng(length).standard_normal((batch, length, WIDTH)).astype(np.float32)
    mask = np.ones((batch, length), np.int64)
    for row, pad in enumerate(pads):
        mask[row, length - pad:] = 0
    with torch.no_grad():
        want = module(torch.from_numpy(x), mask=torch.from_numpy(mask.astype(bool)) if masked else None).numpy()
    weights = lucidrains_weights(module, x)
    feeds = {"input_ids": np.arange(batch * length).reshape(batch, length), "attention_mask": mask}
    session, graph = compiled_bare(LUCIDRAINS, weights, tmp_path / "w.safetensors")
    (got,) = session.run(["last_hidden_state"], feeds)
    real = mask.astype(bool)
    assert_close(got[real], want[real], f"lucidrains {case}")
    assert_close(evaluate(graph, feeds)["last_hidden_state"][real], want[real], f"lucidrains {case}, IR")
    if case == "not_a_multiple":  # the paper's conventions (the defaults) are another attention here
        session, _ = compiled_bare("pinv_scale: per_head", weights, tmp_path / "w.safetensors")
        assert float(np.abs(session.run(["last_hidden_state"], feeds)[0] - want).max()) > 1e-2


HF_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, vocab_size=100,
                 max_position_embeddings=66, num_landmarks=8, segment_means_seq_len=32, conv_kernel_size=5)


@pytest.mark.parametrize("pads", [(0,), (4, 9, 0), (31, 0)], ids=["unpadded", "segments_of_padding", "one_token"])
def test_nystromformer_padded_batches_match_transformers(pads, tmp_path):
    """Segments of 4: row 0 with 4 pads has a last segment of padding only; 9 pads, two and a quarter;
    31, a single real token."""
    model = randomise(transformers.NystromformerModel(transformers.NystromformerConfig(**HF_CONFIG)), seed=7)
    session = import_and_compile(model, tmp_path)
    attention = yaml.safe_load((tmp_path / "imported" / "spec.yaml").read_text())["block"]["attention"]
    assert (attention["pinv_scale"], attention["mask_padding"]) == ("global", "keys")
    ids = np.random.default_rng(len(pads)).integers(0, 100, (len(pads), 32))
    mask, types = np.ones_like(ids), np.zeros_like(ids)
    for row, pad in enumerate(pads):
        mask[row, 32 - pad:] = 0
    (got,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    assert_close(got, transformers_output(model, ids, mask, types), f"nystromformer pads {pads}")


def transformers_output(model, ids, mask, types) -> np.ndarray:
    ids, mask, types = torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)
    with torch.no_grad():
        if bool(mask.all()):
            return model(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state.numpy()
        additive = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        states = model.embeddings(input_ids=ids, token_type_ids=types)
        return model.encoder(states, attention_mask=additive).last_hidden_state.numpy()


def test_lucidrains_empty_landmarks_need_a_value_head_per_query_head():
    """lucidrains' module has as many value heads as query heads: its uniform rows are refused beside
    grouped key/value heads, at the attention's place in the spec, before anything is built."""
    with pytest.raises(SpecError, match="block.attention: empty_landmarks: uniform is lucidrains' convention"):
        parse_spec(f"""
tfc: 1
name: grouped
topology: encoder
model: {{width: 32, heads: 4, kv_heads: 2, ffn_width: 32, vocab_size: 10, max_length: 16}}
block: {{attention: {{kind: nystrom, landmarks: 4, conv_kernel: 0, {LUCIDRAINS}}}}}
encoder: {{layers: 1}}
""", "grouped.yaml")
