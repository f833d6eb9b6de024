"""Parity of attention kinds with lucidrains' attention modules (test extras, pinned), each with the same
weights, fp32 on onnxruntime, padded batches included: memory-compressed-attention's
`MemoryCompressedAttention` (kind `memory_compressed`), local-attention's `LocalMHA` (kind
`sliding_window` with rotary positions) and reformer-pytorch's `LSHSelfAttention` (kind `lsh`).

A module is compared bare: a spec of one block with no residual, norm or FFN (`placement: none`,
`ffn: {enabled: false}`), no positions and no final norm computes exactly the attention sublayer of its
token embeddings, so each input row x becomes a row of the embedding table, read by ids 0..B·S-1
(tests/test_parity_nystrom.py does the same). The module's conventions are options of the kind, named in
each case.

memory-compressed-attention 0.0.7: one `to_qkv` (3·D, D) without bias (our query, key and value biases
0), `to_out` with a bias, one grouped Conv1d `compress_fn` shared by keys and values (our
key_compression and value_compression are the same weights), and a null key and value (1, 1, D) in
front of the slots in every call. Its conventions: the front is zero-padded to a whole stride
(`padding: front`), the null slot is there in encoders too (`null_slot: always`) and scores are scaled
by 1/√D, the whole width (`scale`). Its `input_mask` is inverted (`mask_q < mask_k` keeps only a
padded query's real slots, so every real query attends the null key alone), so a padded batch is
compared with the module run on each row's real tokens alone, the rows padded by whole strides (the
front padding is then the same: padding only fills slots that are hidden).

local-attention 1.11.2: `LocalMHA` (exact window, the default) is `sliding_window` with `window` = its
window_size and rotary positions (half-split, θ = 10000, the whole head), to_qkv and to_out without
bias. Its convention: in an encoder (look_forward = 1) a query is rotated at its position + window
(`query_rotation: window_ahead`); a decoder's queries at their own. Handed no mask, its autopad adds zero
keys that real queries near the end attend, so a length that is not a multiple of the window gets an
all-true mask (the padding is then masked), as every padded batch gets its mask.

reformer-pytorch 1.4.4: `LSHSelfAttention` (no local heads, no memory keys) is `lsh` as trax writes it
(every key of a chunk and the one before, the look-back rolled across rounds: `same_bucket: false,
look_back: rolled`), scores scaled by 1/√head_width, unit keys, with bucket_size as our `chunk` and
its buckets as many as length / bucket_size (so each length is its own spec). Its rotations are drawn by
torch.randn at every call, (1, Dh, rounds, buckets/2) shared by the heads: the test draws them from a
seed, hands them over as our `rotations` weight, and reseeds before the call. Its convention: padded
positions are hashed and sorted like the others and only hidden as keys (`padding: hashed`); ours share
a bucket of their own by default. Its self score is -5e4 (ours -1e5): a query sees itself only when
nothing else is visible, and either weight is then 0 beside any other key. The module runs in float64:
in float32 a query that sees only itself in every round (a decoder's first tokens) gets round weights
exp(z - logsumexp z) that sum to 1 only within float32's step at 5e4 (0.004), so its output is its value
scaled by up to 1.002 (measured: 1.0017).
"""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from conftest import whole_input
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import SpecError
from tfcompiler.ir.interpret import evaluate

torch = pytest.importorskip("torch")

TOLERANCE = 1e-4
WIDTH, HEADS = 32, 4
HEAD_WIDTH = WIDTH // HEADS


def bare_spec(topology: str, attention: str, vocab: int, positional: str = "none"):
    """One attention sublayer over the embeddings, nothing else (positions: those of the attention)."""
    return parse_spec(f"""
tfc: 1
name: bare-attention
topology: {topology}
model: {{width: {WIDTH}, heads: {HEADS}, head_width: {HEAD_WIDTH}, ffn_width: {WIDTH}, vocab_size: {vocab},
        max_length: 64}}
positional: {positional}
block:
  placement: none
  attention: {attention}
  ffn: {{enabled: false}}
{topology}: {{layers: 1, final_norm: false}}
head: {{kind: none}}
""", "bare-attention.yaml")


def run_bare(topology: str, attention: str, weights: dict, x: np.ndarray, mask: np.ndarray, path,
             positional: str = "none") -> np.ndarray:
    """The bare spec compiled with `weights` (x as its embedding table) on onnxruntime: (B, S, D); the
    IR's NumPy interpreter is checked to agree with it at real tokens."""
    batch, length = mask.shape
    weights = {"embeddings.tokens.weight": x.reshape(-1, WIDTH), **weights}
    save_file({name: np.ascontiguousarray(w, dtype=np.float32) for name, w in weights.items()}, str(path))
    compiled = compile_spec(bare_spec(topology, attention, batch * length, positional), weights=str(path))
    session = ort.InferenceSession(compiled.model.serialize())
    ids = np.arange(batch * length).reshape(batch, length)
    feeds = whole_input(session, {"input_ids": ids, "attention_mask": mask})
    (got,) = session.run(["last_hidden_state"], feeds)
    real = mask.astype(bool)  # a padded query whose keys are all hidden has no defined output
    assert_close(evaluate(compiled.graph, feeds)["last_hidden_state"][real], got[real], "the IR's NumPy interpreter")
    return got


def padding_mask(length: int, pads) -> np.ndarray:
    mask = np.ones((len(pads), length), np.int64)
    for row, pad in enumerate(pads):
        mask[row, length - pad:] = 0
    return mask


def assert_close(got, want, what):
    error = float(np.abs(got - want).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


def qkv_weights(site: str, to_qkv: np.ndarray) -> dict[str, np.ndarray]:
    """A fused (3·H·Dh, D) projection without bias as our query, key and value (D, H·Dh), biases 0."""
    weights = {}
    for name, matrix in zip(("query", "key", "value"), np.split(to_qkv, 3, axis=0)):
        weights[f"{site}.{name}.weight"], weights[f"{site}.{name}.bias"] = matrix.T, np.zeros(len(matrix))
    return weights


def state_of(module) -> dict[str, np.ndarray]:
    return {name: p.detach().numpy() for name, p in module.state_dict().items()}


# --- memory-compressed-attention --------------------------------------------------------------------------
COMPRESSION = 3
MCA_LUCIDRAINS = (f"{{kind: memory_compressed, compression: {COMPRESSION}, padding: front, null_slot: always, "
                  f"scale: {WIDTH ** -0.5!r}}}")


def mca_module(causal: bool, seed: int):
    mca = pytest.importorskip("memory_compressed_attention")
    torch.manual_seed(seed)
    module = mca.MemoryCompressedAttention(dim=WIDTH, heads=HEADS, causal=causal, compression_factor=COMPRESSION)
    with torch.no_grad():  # its null key and value start at zero: make them count
        module.null_k.normal_()
        module.null_v.normal_()
    return module.eval()


def mca_weights(module) -> dict[str, np.ndarray]:
    state, site = state_of(module), "attention"
    weights = qkv_weights(site, state["to_qkv.weight"])
    null_shape = (1, HEADS, 1, HEAD_WIDTH)  # (1, 1, D) split into heads
    weights.update({f"{site}.output.weight": state["to_out.weight"].T, f"{site}.output.bias": state["to_out.bias"],
                    f"{site}.null_key": state["null_k"].reshape(null_shape),
                    f"{site}.null_value": state["null_v"].reshape(null_shape)})
    for name in ("key", "value"):  # one convolution compresses both
        weights[f"{site}.{name}_compression.weight"] = state["compress_fn.conv.weight"]
        weights[f"{site}.{name}_compression.bias"] = state["compress_fn.conv.bias"]
    return weights


def on_real_tokens(module, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The module on each row's real tokens alone (its own input_mask is inverted), zeros at padding."""
    out = np.zeros_like(x)
    with torch.no_grad():
        for row in range(len(x)):
            real = int(mask[row].sum())
            out[row, :real] = module(torch.from_numpy(x[row:row + 1, :real]))[0].numpy()
    return out


# (length, padded tokens at the end of each row: whole strides)
MCA_SHAPES = [(9, (0, 0)), (10, (0, 0)), (11, (0, 3, 6)), (13, (3, 0))]


@pytest.mark.parametrize("topology", ["encoder", "decoder"])
def test_memory_compressed_attention_matches(topology, tmp_path):
    module = mca_module(causal=topology == "decoder", seed=len(topology))
    weights = {f"{topology}.layers.0.{name}": w for name, w in mca_weights(module).items()}
    for length, pads in MCA_SHAPES:
        mask = padding_mask(length, pads)
        x = np.random.default_rng(length).standard_normal((len(pads), length, WIDTH)).astype(np.float32)
        want = on_real_tokens(module, x, mask)
        got = run_bare(topology, MCA_LUCIDRAINS, weights, x, mask, tmp_path / "w.safetensors")
        real = mask.astype(bool)
        assert_close(got[real], want[real], f"{topology} at {length}, pads {pads}")
        if length == 10:  # the tail padding (the paper's, the default) is another attention here
            tail = MCA_LUCIDRAINS.replace("padding: front", "padding: tail")
            other = run_bare(topology, tail, weights, x, mask, tmp_path / "w.safetensors")
            assert float(np.abs(other - want).max()) > 1e-2


# --- local-attention ---------------------------------------------------------------------------------------
LOCAL_WINDOW = 4
LOCAL_LUCIDRAINS = f"{{kind: sliding_window, window: {LOCAL_WINDOW}, query_rotation: window_ahead}}"


def local_module(causal: bool, seed: int):
    local_attention = pytest.importorskip("local_attention")
    torch.manual_seed(seed)
    return local_attention.LocalMHA(dim=WIDTH, window_size=LOCAL_WINDOW, dim_head=HEAD_WIDTH, heads=HEADS,
                                    causal=causal).eval()


def local_weights(module, site: str) -> dict[str, np.ndarray]:
    state = state_of(module)
    output = state["to_out.weight"].T
    return {**qkv_weights(site, state["to_qkv.weight"]), f"{site}.output.weight": output,
            f"{site}.output.bias": np.zeros(len(output.T))}


# (length, padded tokens at the end of each row)
LOCAL_SHAPES = [(12, (0, 0)), (10, (0, 0)), (13, (0, 5, 11)), (16, (7, 0))]


@pytest.mark.parametrize("topology", ["encoder", "decoder"])
def test_local_attention_matches(topology, tmp_path):
    module = local_module(causal=topology == "decoder", seed=len(topology))
    weights = local_weights(module, f"{topology}.layers.0.attention")
    for length, pads in LOCAL_SHAPES:
        mask = padding_mask(length, pads)
        x = np.random.default_rng(length).standard_normal((len(pads), length, WIDTH)).astype(np.float32)
        masked = length % LOCAL_WINDOW or not mask.all()
        with torch.no_grad():
            want = module(torch.from_numpy(x), mask=torch.from_numpy(mask.astype(bool)) if masked else None).numpy()
        got = run_bare(topology, LOCAL_LUCIDRAINS, weights, x, mask, tmp_path / "w.safetensors", positional="rope")
        real = mask.astype(bool)
        assert_close(got[real], want[real], f"{topology} at {length}, pads {pads}")
        if length == 12:  # queries rotated at their own positions: the same attention in decoders only
            own = LOCAL_LUCIDRAINS.replace("window_ahead", "own")
            other = run_bare(topology, own, weights, x, mask, tmp_path / "w.safetensors", positional="rope")
            assert (float(np.abs(other - want).max()) > 1e-2) == (topology == "encoder")


def test_query_rotation_needs_rotary_positions():
    with pytest.raises(SpecError, match="block.attention: query_rotation: window_ahead shifts rotary positions"):
        bare_spec("encoder", LOCAL_LUCIDRAINS, 10, positional="alibi")


# --- reformer-pytorch --------------------------------------------------------------------------------------
LSH_CHUNK = 4
LSH_REFORMER = ("{{kind: lsh, buckets: {buckets}, rounds: {rounds}, chunk: " + str(LSH_CHUNK) + ", same_bucket: false, "
                "look_back: rolled, padding: {padding}, rotations: weights}}")


def lsh_module(causal: bool, rounds: int, seed: int):
    reformer_pytorch = pytest.importorskip("reformer_pytorch")
    torch.manual_seed(seed)
    return reformer_pytorch.LSHSelfAttention(dim=WIDTH, heads=HEADS, bucket_size=LSH_CHUNK, n_hashes=rounds,
                                             causal=causal).double().eval()


def lsh_weights(module, site: str, rotations: np.ndarray) -> dict[str, np.ndarray]:
    state = state_of(module)
    zeros = np.zeros(HEADS * HEAD_WIDTH)
    return {f"{site}.query_key.weight": state["toqk.weight"].T, f"{site}.query_key.bias": zeros,
            f"{site}.value.weight": state["tov.weight"].T, f"{site}.value.bias": zeros,
            f"{site}.output.weight": state["to_out.weight"].T, f"{site}.output.bias": state["to_out.bias"],
            f"{site}.rotations": np.broadcast_to(rotations, (HEADS,) + rotations.shape[1:])}


# (length: a multiple of 2·chunk, hashing rounds, padded tokens at the end of each row)
LSH_SHAPES = [(16, 2, (0, 0)), (16, 3, (5, 0, 11)), (24, 2, (9, 2))]


@pytest.mark.parametrize("topology", ["encoder", "decoder"])
def test_reformer_pytorch_lsh_attention_matches(topology, tmp_path):
    for length, rounds, pads in LSH_SHAPES:
        module = lsh_module(causal=topology == "decoder", rounds=rounds, seed=length + rounds)
        buckets = length // LSH_CHUNK
        torch.manual_seed(rounds)  # the rotations its call draws first
        rotations = torch.randn((1, HEAD_WIDTH, rounds, buckets // 2), dtype=torch.float64).numpy()
        mask = padding_mask(length, pads)
        x = np.random.default_rng(length).standard_normal((len(pads), length, WIDTH)).astype(np.float32)
        torch.manual_seed(rounds)
        with torch.no_grad():
            masked = {"input_mask": torch.from_numpy(mask.astype(bool))} if not mask.all() else {}
            want = module(torch.from_numpy(x).double(), **masked).numpy()
        weights = lsh_weights(module, f"{topology}.layers.0.attention", rotations)
        spec = LSH_REFORMER.format(buckets=buckets, rounds=rounds, padding="hashed")
        got = run_bare(topology, spec, weights, x, mask, tmp_path / "w.safetensors")
        real = mask.astype(bool)
        assert_close(got[real], want[real], f"{topology} at {length}, {rounds} rounds, pads {pads}")
        if not mask.all():  # padding in a bucket of its own (the default) moves the real tokens' chunks
            spec = LSH_REFORMER.format(buckets=buckets, rounds=rounds, padding="own_bucket")
            other = run_bare(topology, spec, weights, x, mask, tmp_path / "w.safetensors")
            assert float(np.abs(other[real] - want[real]).max()) > 1e-2
