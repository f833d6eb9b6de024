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


def spec_for(cell: str, bidirectional: bool, vectors: bool = False):
    stack = "encoder" if bidirectional else "decoder"
    source = f"{{kind: vectors, features: {FEATURES}, linear: false}}" if vectors else "tokens"
    head = "{kind: none}" if bidirectional else "{kind: lm, tied: false}"
    return parse_spec(f"""
tfc: 1
name: torch-{cell}
topology: {stack}
model: {{width: {WIDTH}, heads: 1, ffn_width: {WIDTH}, vocab_size: {VOCAB}, max_length: 64}}
input: {source}
positional: none
block: {{placement: none, attention: {{kind: recurrent, cell: {cell}, bidirectional: {str(bidirectional).lower()}}},
        ffn: {{enabled: false}}}}
{stack}: {{layers: {LAYERS}}}
head: {head}
""")


@pytest.mark.parametrize("vectors", [False, True], ids=["tokens", "vectors"])
@pytest.mark.parametrize("bidirectional", [True, False], ids=["bidirectional_encoder", "decoder"])
@pytest.mark.parametrize("cell", sorted(MODULES))
def test_torch_recurrent_layers_match(cell, bidirectional, vectors, tmp_path):
    torch.manual_seed(len(cell) + bidirectional + 2 * vectors)
    directions = 2 if bidirectional else 1
    rnn = MODULES[cell](FEATURES if vectors else WIDTH, WIDTH // directions, num_layers=LAYERS,
                        bidirectional=bidirectional, batch_first=True).eval()
    embedding, head = torch.nn.Embedding(VOCAB, WIDTH), torch.nn.Linear(WIDTH, VOCAB, bias=False)
    sd = {k: v.detach().numpy() for k, v in rnn.state_dict().items()}
    stack = "encoder" if bidirectional else "decoder"
    weights = {} if vectors else {"embeddings.tokens.weight": embedding.weight.detach().numpy()}
    if not bidirectional:
        weights["lm_head.weight"] = head.weight.detach().numpy().T
    for layer in range(LAYERS):
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            parts = [sd[f"{name}_l{layer}"]] + ([sd[f"{name}_l{layer}_reverse"]] if bidirectional else [])
            weights[f"{stack}.layers.{layer}.attention.{name}"] = np.stack(parts)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()},
              str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compile_spec(spec_for(cell, bidirectional, vectors),
                                                weights=str(tmp_path / "w.safetensors")).model.serialize())
    rng = np.random.default_rng(3)
    for batch, length, pad in [(1, 7, 0), (3, 11, 4)]:
        mask = np.ones((batch, length), np.int64)
        mask[0, length - pad:] = 0
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
