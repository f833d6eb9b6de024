"""Parity with torch.nn.RNN / LSTM / GRU: two-layer stacks (bidirectional in an encoder, forward in
a decoder with an LM head) built from the same random weights as a tfcompiler spec of recurrent
blocks (`placement: none`, no FFN), compiled and run on onnxruntime; padded batches go through
PyTorch's packed sequences. The stacks read token embeddings, or float vectors of another width than
the hidden state's (input `vectors` with `linear: false`: the first layer's weight_ih is (gates·H, F),
torch's input_size F)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from conftest import whole_input
from tfcompiler import compile_spec, parse_spec

torch = pytest.importorskip("torch")

VOCAB, WIDTH, LAYERS, FEATURES = 40, 16, 2, 5
MODULES = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}


def spec_for(cell: str, bidirectional: bool, vectors: bool = False, state: bool = False, head: str | None = None):
    stack = "encoder" if bidirectional else "decoder"
    source = f"{{kind: vectors, features: {FEATURES}, linear: false}}" if vectors else "tokens"
    head = head or ("{kind: none}" if bidirectional else "{kind: lm, tied: false}")
    return parse_spec(f"""
tfc: 1
name: torch-{cell}
topology: {stack}
model: {{width: {WIDTH}, heads: 1, ffn_width: {WIDTH}, vocab_size: {VOCAB}, max_length: 64}}
input: {source}
positional: none
block: {{placement: none, ffn: {{enabled: false}}, attention: {{kind: recurrent, cell: {cell},
        bidirectional: {str(bidirectional).lower()}, state: {str(state).lower()}}}}}
{stack}: {{layers: {LAYERS}}}
head: {head}
""")


def layer_weights(rnn, bidirectional: bool) -> dict[str, np.ndarray]:
    """The torch module's layers under tfcompiler's names, a leading axis per direction (forward, reverse)."""
    sd = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    stack = "encoder" if bidirectional else "decoder"
    return {f"{stack}.layers.{layer}.attention.{name}":
            np.stack([sd[f"{name}_l{layer}"]] + ([sd[f"{name}_l{layer}_reverse"]] if bidirectional else []))
            for layer in range(LAYERS) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}


def save_weights(weights: dict[str, np.ndarray], path) -> None:
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, str(path))


def padded_mask(batch: int, length: int, pad: int) -> np.ndarray:
    """All ones, but the first row ends in `pad` padded positions."""
    mask = np.ones((batch, length), np.int64)
    mask[0, length - pad:] = 0
    return mask


@pytest.mark.parametrize("vectors", [False, True], ids=["tokens", "vectors"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional_encoder", "decoder"])
@pytest.mark.parametrize("cell", sorted(MODULES))
def test_torch_recurrent_layers_match(cell, bidirectional, vectors, tmp_path):
    torch.manual_seed(len(cell) + bidirectional + 2 * vectors)
    directions = 2 if bidirectional else 1
    rnn = MODULES[cell](FEATURES if vectors else WIDTH, WIDTH // directions, num_layers=LAYERS,
                        bidirectional=bidirectional, batch_first=True).eval()
    embedding, head = torch.nn.Embedding(VOCAB, WIDTH), torch.nn.Linear(WIDTH, VOCAB, bias=False)
    weights = {} if vectors else {"embeddings.tokens.weight": embedding.weight.detach().numpy()}
    if not bidirectional:
        weights["lm_head.weight"] = head.weight.detach().numpy().T
    save_weights({**weights, **layer_weights(rnn, bidirectional)}, tmp_path / "w.safetensors")
    session = ort.InferenceSession(compile_spec(spec_for(cell, bidirectional, vectors),
                                                weights=str(tmp_path / "w.safetensors")).model.serialize())
    rng = np.random.default_rng(3)
    for batch, length, pad in [(1, 7, 0), (3, 11, 4)]:
        mask = padded_mask(batch, length, pad)
        if vectors:
            source = {"inputs_embeds": rng.standard_normal((batch, length, FEATURES)).astype(np.float32)}
        else:
            source = {"input_ids": rng.integers(0, VOCAB, (batch, length))}
        feeds = whole_input(session, {**source, "attention_mask": mask})  # a decoder's zero states
        got = session.run([session.get_outputs()[0].name], feeds)[0]
        lengths = torch.from_numpy(mask.sum(1))
        with torch.no_grad():
            start = torch.from_numpy(source["inputs_embeds"]) if vectors else \
                embedding(torch.from_numpy(source["input_ids"]))
            packed = torch.nn.utils.rnn.pack_padded_sequence(start, lengths, batch_first=True, enforce_sorted=False)
            states, _ = rnn(packed)
            states, _ = torch.nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=length)
            want = (states if bidirectional else head(states)).numpy()
        real = mask.astype(bool)
        error = float(np.abs(got[real] - want[real]).max())
        assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), f"{cell} {batch}x{length}: {error}"


@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional_encoder", "decoder"])
@pytest.mark.parametrize("cell", sorted(MODULES))
def test_torch_initial_and_final_states_match(cell, bidirectional, tmp_path):
    """`state: true`: each layer's h0 (and c0) are the inputs past_states.K.h (.c) and its h_n (c_n) the
    outputs present_states.K.h (.c), (directions, B, H), torch's (layers·directions, B, H) cut per layer,
    each row's after its last real token (the reverse direction's after its first); the stacks read
    vectors of input_size 5, compiled without a cache (a decoder's cache names its states otherwise)."""
    torch.manual_seed(7 + len(cell) + bidirectional)
    directions = 2 if bidirectional else 1
    hidden = WIDTH // directions
    rnn = MODULES[cell](FEATURES, hidden, num_layers=LAYERS, bidirectional=bidirectional, batch_first=True).eval()
    save_weights(layer_weights(rnn, bidirectional), tmp_path / "w.safetensors")
    spec = spec_for(cell, bidirectional, vectors=True, state=True, head="{kind: none}")  # the states, not logits
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"), cache=False)
    session = ort.InferenceSession(compiled.model.serialize())
    names = [o.name for o in session.get_outputs()]
    parts = ("h", "c") if cell == "lstm" else ("h",)
    rng = np.random.default_rng(11)
    for batch, length, pad in [(1, 6, 0), (3, 9, 4)]:
        vectors = rng.standard_normal((batch, length, FEATURES)).astype(np.float32)
        mask = padded_mask(batch, length, pad)
        first = {part: rng.standard_normal((LAYERS * directions, batch, hidden)).astype(np.float32) for part in parts}
        feeds = {"inputs_embeds": vectors, "attention_mask": mask,
                 **{f"past_states.{k}.{part}": first[part][k * directions:(k + 1) * directions]
                    for k in range(LAYERS) for part in parts}}
        got = dict(zip(names, session.run(None, feeds)))
        with torch.no_grad():
            packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(vectors), torch.from_numpy(mask.sum(1)),
                                                             batch_first=True, enforce_sorted=False)
            start = tuple(torch.from_numpy(first[part]) for part in parts)
            states, last = rnn(packed, start if cell == "lstm" else start[0])
            states, _ = torch.nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=length)
        last = dict(zip(parts, (t.numpy() for t in (last if cell == "lstm" else (last,)))))
        real = mask.astype(bool)
        assert float(np.abs(got["last_hidden_state"][real] - states.numpy()[real]).max()) <= 1e-4, (cell, batch)
        for k in range(LAYERS):
            for part in parts:
                want = last[part][k * directions:(k + 1) * directions]
                error = float(np.abs(got[f"present_states.{k}.{part}"] - want).max())
                assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), (cell, batch, k, part, error)
