"""Parity with labml-nn's Transformer-XL (labml_nn.transformers.xl): its RelativeMultiHeadAttention (a
learned key vector and bias per distance and head, the content bias, no position bias v) against a
bare-module spec of one `transformer_xl` attention with `form: learned`, padded batches included; and
its TransformerXL layer stack (pre-norm layers, the memory normed as the segment is, a final norm) over
two segments carrying the memory, against the matching decoder with `memory`.

labml's shift_right leaves wrapped-around values in the lower triangle of its (S, T + S) matrix, but
get_scores keeps only the last T columns, and column S + j of row i < S always lies at or right of the
diagonal: every kept entry is the right distance, with or without memory, future keys included. The
first test proves that on labml's own code, so the others compare every real position."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")
pytest.importorskip("labml_nn")
from labml_nn.transformers.feed_forward import FeedForward  # noqa: E402
from labml_nn.transformers.xl import TransformerXL, TransformerXLLayer  # noqa: E402
from labml_nn.transformers.xl.relative_mha import RelativeMultiHeadAttention  # noqa: E402

D, HEADS, FFN, LENGTH, MEMORY = 16, 2, 24, 8, 6

SPEC = f"""
tfc: 1
name: labml_xl
topology: decoder
model: {{width: {D}, heads: {HEADS}, ffn_width: {FFN}, vocab_size: 1, max_length: {LENGTH}}}
input: {{kind: vectors}}
positional: {{kind: transformer_xl, form: learned}}
"""
MODULE = SPEC + "block: {placement: none, ffn: {enabled: false}}\ndecoder: {layers: 1, final_norm: false}\n" \
                "head: {kind: none}\n"
STACK = SPEC + f"block: {{placement: pre, ffn: {{activation: relu}}}}\ndecoder: {{layers: 2, memory: {MEMORY}}}\n" \
               "head: {kind: none}\n"


@pytest.fixture(autouse=True)
def labml_debug_hook(monkeypatch):
    """labml-nn 0.5.1's attention calls labml.tracker.debug, which labml 0.5.3 no longer has; it only
    records the probabilities for inspection, so a no-op stands in for it."""
    from labml import tracker
    if not hasattr(tracker, "debug"):
        monkeypatch.setattr(tracker, "debug", lambda *args, **kwargs: None, raising=False)


def randomised(module):
    """labml starts its three tables at zero: draw every parameter, so each term counts."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=generator))
    return module.eval()


def attention_weights(attention, ours: str, memory: int) -> dict[str, np.ndarray]:
    """One RelativeMultiHeadAttention under our names: (in, out) matrices, zero query and key biases
    (labml has none), and the distance tables: our row r is distance d = r + 1 - L, labml's row P - d."""
    p = {k: v.detach().numpy() for k, v in attention.state_dict().items()}
    top = attention.P + LENGTH - 1  # labml's row of our first distance, 1 - L
    rows = top - np.arange(2 * LENGTH + memory - 1)
    weights = {f"{ours}.relative.key.weight": p["key_pos_embeddings"][rows],
               f"{ours}.relative.key_bias": p["key_pos_bias"][rows],
               f"{ours}.relative.content_bias": p["query_pos_bias"][:, None, :],
               f"{ours}.query.bias": np.zeros(D), f"{ours}.key.bias": np.zeros(D),
               f"{ours}.value.bias": p["value.linear.bias"], f"{ours}.output.weight": p["output.weight"].T,
               f"{ours}.output.bias": p["output.bias"]}
    for name in ("query", "key", "value"):
        weights[f"{ours}.{name}.weight"] = p[f"{name}.linear.weight"].T
    return weights


def session_for(spec: str, weights: dict, tmp_path) -> ort.InferenceSession:
    path = tmp_path / "w.safetensors"
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, str(path))
    return ort.InferenceSession(compile_spec(parse_spec(spec), weights=str(path), cache=False).model.serialize())


def causal(queries: int, keys: int) -> torch.Tensor:
    """labml's mask [S, T, 1]: query i (after keys - queries memory states) sees keys up to its own."""
    return (torch.arange(keys)[None, :] <= torch.arange(queries)[:, None] + keys - queries)[..., None]


@pytest.mark.parametrize("queries,memory", [(5, 0), (5, 3), (3, 7), (1, 4)])
def test_labml_shift_gives_every_kept_entry_its_distance(queries, memory):
    attention = RelativeMultiHeadAttention(HEADS, D, 0.0)
    with torch.no_grad():  # each row's bias is its row number; zero queries leave only that term
        attention.key_pos_bias.copy_(torch.arange(2 * attention.P, dtype=torch.float32)[:, None].expand(-1, HEADS))
    keys = queries + memory
    scores = attention.get_scores(torch.zeros(queries, 1, HEADS, D // HEADS), torch.randn(keys, 1, HEADS, D // HEADS))
    distance = torch.arange(queries)[:, None] + memory - torch.arange(keys)[None, :]
    assert torch.equal(scores[:, :, 0, 0], (attention.P - distance).float())


def test_relative_attention_matches_labml(tmp_path):
    attention = randomised(RelativeMultiHeadAttention(HEADS, D, 0.0))
    session = session_for(MODULE, attention_weights(attention, "decoder.layers.0.attention", 0), tmp_path)
    x = np.random.default_rng(0).standard_normal((3, 7, D)).astype(np.float32)
    mask = np.ones((3, 7), np.int64)
    mask[0, -2:] = 0
    mask[2, -5:] = 0
    keep = causal(7, 7) & torch.from_numpy(mask == 1).T[None]  # [S, T, B]
    with torch.no_grad():
        xt = torch.from_numpy(x).transpose(0, 1)
        want = attention(query=xt, key=xt, value=xt, mask=keep).transpose(0, 1).numpy()
    got = session.run(["last_hidden_state"], {"inputs_embeds": x, "attention_mask": mask})[0]
    real = mask == 1  # a padded query's row differs by convention only (labml lets it see the real keys)
    np.testing.assert_allclose(got[real], want[real], atol=1e-4, rtol=0)


def stack_weights(model) -> dict[str, np.ndarray]:
    weights = {"decoder.final_norm.weight": model.norm.weight, "decoder.final_norm.bias": model.norm.bias}
    for i, layer in enumerate(model.layers):
        ours = f"decoder.layers.{i}"
        weights |= {f"{ours}.attention_norm.weight": layer.norm_self_attn.weight,
                    f"{ours}.attention_norm.bias": layer.norm_self_attn.bias,
                    f"{ours}.ffn_norm.weight": layer.norm_ff.weight, f"{ours}.ffn_norm.bias": layer.norm_ff.bias,
                    f"{ours}.ffn.up.weight": layer.feed_forward.layer1.weight.T,
                    f"{ours}.ffn.up.bias": layer.feed_forward.layer1.bias,
                    f"{ours}.ffn.down.weight": layer.feed_forward.layer2.weight.T,
                    f"{ours}.ffn.down.bias": layer.feed_forward.layer2.bias}
    weights = {k: v.detach().numpy() for k, v in weights.items()}
    for i, layer in enumerate(model.layers):
        weights |= attention_weights(layer.self_attn, f"decoder.layers.{i}.attention", MEMORY)
    return weights


def test_transformer_xl_stack_matches_labml_over_two_segments(tmp_path):
    layer = TransformerXLLayer(d_model=D, self_attn=RelativeMultiHeadAttention(HEADS, D, 0.0),
                               feed_forward=FeedForward(D, FFN, 0.0), dropout_prob=0.0)
    model = randomised(TransformerXL(layer, 2))
    session = session_for(STACK, stack_weights(model), tmp_path)
    names = [o.name for o in session.get_outputs()]
    rng = np.random.default_rng(1)
    ours = {f"past_memories.{i}": np.zeros((2, 0, D), np.float32) for i in range(2)}
    theirs = []
    for length in (5, 4):  # the first segment (5 states) fits in the memory (6): labml keeps all of it too
        x = rng.standard_normal((2, length, D)).astype(np.float32)
        got = dict(zip(names, session.run(None, {"inputs_embeds": x, "attention_mask": np.ones((2, length), np.int64),
                                                 **ours})))
        keys = length + (theirs[0].shape[0] if theirs else 0)
        with torch.no_grad():
            want, theirs = model(torch.from_numpy(x).transpose(0, 1), theirs, causal(length, keys))
        np.testing.assert_allclose(got["last_hidden_state"], want.transpose(0, 1).numpy(), atol=1e-4, rtol=0)
        for i, state in enumerate(theirs):  # labml returns this segment's layer inputs; ours the last 6 states
            np.testing.assert_allclose(got[f"present_memories.{i}"][:, -length:], state.transpose(0, 1).numpy(),
                                       atol=1e-4, rtol=0)
        ours = {n.replace("present", "past"): v for n, v in got.items() if n.startswith("present")}
