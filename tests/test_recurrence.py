"""Transformer-XL segment recurrence (a stack `memory`): per-layer memories are graph inputs and
outputs; feeding a sequence segment by segment, carrying them, matches the NumPy reference of the
same recurrence (Dai et al. 2019), and with a memory as long as the sequence it equals one causal
pass over the whole sequence. The runtime's `Segments` carries them between calls."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from reference import Reference
from test_components import TOLERANCE, random_weights
from tfc_runtime import Generator, Model, Segments
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import TfcError

SPEC = """
tfc: 1
name: segments
topology: decoder
model: {{width: 32, heads: 4, kv_heads: {kv}, ffn_width: 48, vocab_size: 61, max_length: 40}}
positional: {positional}
block: {{placement: {placement}}}
decoder: {{layers: 2, memory: {memory}{compressed}}}
head: {{kind: lm}}
"""
CASES = {"transformer_xl_pre": dict(positional="transformer_xl", placement="pre", kv=4),
         "t5_post_grouped": dict(positional="{kind: t5, num_buckets: 8, max_distance: 16}", placement="post", kv=2),
         "transformer_xl_learned_post": dict(positional="{kind: transformer_xl, form: learned}", placement="post",
                                             kv=2),
         "alibi_pre": dict(positional="alibi", placement="pre", kv=4),
         "compressive_conv": dict(positional="transformer_xl", placement="pre", kv=4,
                                  compressed=", compressed_memory: {length: 3, rate: 2}"),
         "compressive_mean_post": dict(positional="alibi", placement="post", kv=2,
                                       compressed=", compressed_memory: {length: 4, rate: 3, function: mean}"),
         # the Compressive Transformer package's conventions (tests/test_parity_compressive.py)
         "compressive_gru_enhanced": dict(positional="alibi", placement="pre, residual: gru", kv=4,
                                          compressed=", compressed_memory: {length: 3, rate: 2}, "
                                                     "memory_states: normalized, recurrence: enhanced"),
         "gru_post_enhanced": dict(positional="{kind: t5, num_buckets: 8, max_distance: 16}",
                                   placement="post, residual: gru", kv=2, compressed=", recurrence: enhanced")}


def compiled(case: str, memory: int, tmp_path):
    spec = parse_spec(SPEC.format(memory=memory, **{"compressed": "", **CASES[case]}), f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    model = compile_spec(spec, weights=str(tmp_path / "w.safetensors"))
    return spec, weights, ort.InferenceSession(model.model.serialize()), model


def compressive(case: str) -> bool:
    return "compressed_memory" in CASES[case].get("compressed", "")


def empty_memories(batch: int, compressed: bool = False):
    names = ("past_memories", "past_compressed_memories", "past_pending_memories") if compressed else \
        ("past_memories",)
    return {f"{name}.{i}": np.zeros((batch, 0, 32), np.float32) for name in names for i in range(2)}


@pytest.mark.parametrize("case", sorted(CASES))
def test_segments_match_the_reference_recurrence(case, tmp_path):
    spec, weights, session, _ = compiled(case, 5, tmp_path)
    reference = Reference(spec, weights)
    names = [o.name for o in session.get_outputs()]
    ids = np.random.default_rng(1).integers(0, 61, (2, 13))
    ours = theirs = empty_memories(2, compressed=compressive(case))
    for start, stop in [(0, 4), (4, 7), (7, 13)]:  # segments shorter and longer than the memory
        segment = ids[:, start:stop]
        feeds = {"input_ids": segment, "attention_mask": np.ones_like(segment)}
        got = dict(zip(names, session.run(None, {**feeds, **ours})))
        want = reference({**feeds, **theirs})
        for name in want:
            scale = max(1.0, float(np.abs(want[name]).max(initial=0.0)))
            assert got[name].shape == want[name].shape, name
            assert float(np.abs(got[name] - want[name]).max(initial=0.0)) <= TOLERANCE * scale, (name, start)
        assert got["present_memories.0"].shape[1] == min(stop, 5)
        ours = {n.replace("present", "past"): v for n, v in got.items() if n.startswith("present")}
        theirs = {n.replace("present", "past"): v for n, v in want.items() if n.startswith("present")}


def test_a_memory_as_long_as_the_sequence_equals_one_causal_pass(tmp_path):
    _, _, session, model = compiled("transformer_xl_pre", 12, tmp_path)
    ids = np.random.default_rng(2).integers(0, 61, (2, 12))
    whole = session.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids), **empty_memories(2)})[0]
    path = tmp_path / "segments.onnx"
    model.model.save(str(path))
    segments = Segments(Model(str(path)))
    parts = [segments.run(input_ids=ids[:, a:a + 4], attention_mask=np.ones((2, 4), np.int64))["logits"]
             for a in range(0, 12, 4)]
    np.testing.assert_allclose(np.concatenate(parts, axis=1), whole, atol=1e-5, rtol=0)
    alone = segments.model.run(input_ids=ids[:, 4:8], attention_mask=np.ones((2, 4), np.int64),
                               **empty_memories(2))["logits"]
    assert np.abs(alone - whole[:, 4:8]).max() > 1e-3  # the memory carries context


@pytest.mark.parametrize("case", ["transformer_xl_pre", "compressive_conv", "compressive_mean_post",
                                  "compressive_gru_enhanced"])
def test_generation_feeds_each_token_as_a_segment(case, tmp_path):
    """Generation carries the memories (`tfcompiler.cache` = memory): the prompt is a segment, then each
    new token, as the NumPy reference of the recurrence computes it; while the sequence before a call
    fits in the memory that is the whole sequence's forward (the recomputing fallback), unless the
    recurrence is enhanced."""
    spec, weights, _, model = compiled(case, 5, tmp_path)
    model.model.save(str(tmp_path / "m.onnx"))
    generator = Generator(tmp_path / "m.onnx")
    assert generator.cached and generator.model.metadata["tfcompiler.cache"] == "memory"
    prompt = [7, 3, 44]
    stepped = generator.generate([prompt], max_new_tokens=9, return_dict_in_generate=True, output_logits=True)
    recomputed = generator.generate([prompt], max_new_tokens=9, use_cache=False, return_dict_in_generate=True,
                                    output_logits=True)
    reference, memories = Reference(spec, weights), empty_memories(1, compressed=compressive(case))
    sequence, pended = stepped.sequences[0].tolist(), False
    for step, (start, stop) in enumerate([(0, 3)] + [(t, t + 1) for t in range(3, 11)]):
        segment = np.array([sequence[start:stop]])
        want = reference({"input_ids": segment, "attention_mask": np.ones_like(segment), **memories})
        np.testing.assert_allclose(stepped.logits[step][0], want["logits"][0, -1], atol=TOLERANCE, rtol=0)
        memories = {n.replace("present", "past"): v for n, v in want.items() if n.startswith("present")}
        pended = pended or memories.get("past_pending_memories.0", np.zeros((1, 0))).shape[1] > 0
        if start <= 5 and "enhanced" not in CASES[case].get("compressed", ""):  # everything before the call
            # is in the memory; with enhanced recurrence a layer reads the layer above, not a causal pass
            np.testing.assert_allclose(stepped.logits[step], recomputed.logits[step], atol=TOLERANCE, rtol=0)
    if compressive(case):
        assert memories["past_compressed_memories.0"].shape[1] > 0 and pended
    assert np.abs(stepped.logits[-1] - generator.generate(  # past the memory, the context is bounded
        [sequence[:-1]], max_new_tokens=1, use_cache=False, return_dict_in_generate=True,
        output_logits=True).logits[0]).max() > 1e-3


@pytest.mark.parametrize("text, message", [
    (SPEC.format(memory=4, compressed="", positional="sinusoidal", placement="pre", kv=4), "needs a relative scheme"),
    (SPEC.format(memory=4, compressed="", positional="rope", placement="pre", kv=4), "needs a relative scheme"),
    (SPEC.format(memory=4, compressed="", positional="alibi", placement="pre", kv=4)
     .replace("topology: decoder", "topology: encoder")
     .replace("decoder: {", "encoder: {").replace("head: {kind: lm}", "head: {kind: none}"),
     "needs topology 'decoder'"),
    (SPEC.format(memory=4, compressed=", memory_states: normalized", positional="alibi", placement="post", kv=4),
     r"bad.yaml:\d+:\d+: decoder.memory_states: normalized memories .* every block must be pre-norm"),
    (SPEC.format(memory=0, compressed=", recurrence: enhanced", positional="alibi", placement="pre", kv=4),
     r"bad.yaml:\d+:\d+: decoder.recurrence: .*set `memory` too"),
    (SPEC.format(memory=4, compressed="", positional="alibi", placement="none, residual: gru", kv=4),
     r"bad.yaml:\d+:\d+: decoder.layers\[0\].block.residual: .*placement 'none' has no residual"),
])
def test_memory_needs_a_decoder_with_relative_positions(text, message):
    with pytest.raises(TfcError, match=message):
        parse_spec(text, "bad.yaml")


RECURRENT = """
tfc: 1
name: rnn
topology: {topology}
model: {{width: 16, heads: 2, ffn_width: 16, vocab_size: 30, max_length: 20}}
positional: none
block: {{placement: post, attention: {{kind: recurrent, bidirectional: {bidirectional}}}{cross}}}
{stacks}
head: {{kind: lm}}
"""


@pytest.mark.parametrize("topology, bidirectional, cross, message", [
    ("decoder", "true", "", "only encoder stacks can have one"),
    ("encoder-decoder", "false", "", "cannot attend an encoder: set block.cross_attention"),
    ("decoder", "false, start: encoder", "", "needs topology 'encoder-decoder'"),
    ("encoder-decoder", "false, start: encoder", ", cross_attention: {kind: multi_head}",
     "start: encoder is for the decoder's layers"),
    ("encoder-decoder", "false, start: encoder, state: true", ", cross_attention: {kind: multi_head}", "not both"),
])
def test_recurrent_layers_refuse_what_they_cannot_do(topology, bidirectional, cross, message):
    """(The template gives both stacks the same block.)"""
    stacks = "decoder: {layers: 1}" if topology == "decoder" else "encoder: {layers: 1}\ndecoder: {layers: 1}"
    text = RECURRENT.format(topology=topology, bidirectional=bidirectional, cross=cross, stacks=stacks)
    with pytest.raises(TfcError, match=message):
        parse_spec(text, "bad.yaml")


def test_state_handover_pairs_cells():
    text = RECURRENT.format(topology="encoder-decoder", bidirectional="false",
                            cross=", cross_attention: {kind: multi_head}",
                            stacks="encoder: {layers: 1}\ndecoder: {layers: 2, block: {attention: "
                                   "{kind: recurrent, cell: gru, start: encoder}}}")
    with pytest.raises(TfcError, match="2 decoder recurrent layers start from the encoder's, which has 1"):
        parse_spec(text, "bad.yaml")
    with pytest.raises(TfcError, match="pairs LSTMs with LSTMs"):
        parse_spec(text.replace("layers: 2, block", "layers: 1, block"), "bad.yaml")


STATEFUL = """
tfc: 1
name: stateful
topology: decoder
model: {{width: 16, heads: 2, ffn_width: 24, vocab_size: 30, max_length: 40}}
positional: none
block: {{placement: {placement}, attention: {{kind: recurrent, cell: {cell}, state: true}}{ffn}}}
decoder: {{layers: 2}}
head: {{kind: lm}}
"""


@pytest.mark.parametrize("cell, placement", [("lstm", "none"), ("gru", "pre"), ("rnn", "post")])
def test_stateful_recurrent_layers_carry_their_state(cell, placement, tmp_path):
    """From given states the compiled layers match the reference's recurrence, and fed token by
    token through `Segments` a decoder gives what one pass over the whole sequence gives. `state`
    names the states itself in a model compiled without a cache; with one (the default) the same
    states are the cache's past_state.N.* (B, 1, H) and give the same numbers."""
    ffn = ", ffn: {enabled: false}" if placement == "none" else ""
    spec = parse_spec(STATEFUL.format(cell=cell, placement=placement, ffn=ffn), "stateful.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    compiled = compile_spec(spec, weights=str(tmp_path / "w.safetensors"), cache=False)
    path = tmp_path / "stateful.onnx"
    compiled.model.save(str(path))
    model = Model(str(path))
    parts = ("h", "c") if cell == "lstm" else ("h",)
    rng = np.random.default_rng(4)
    ids = rng.integers(0, 30, (2, 6))
    mask = np.ones_like(ids)
    mask[0, 4:] = 0
    states = {f"past_states.{k}.{p}": rng.standard_normal((1, 2, 16)).astype(np.float32)
              for k in range(2) for p in parts}
    got = model.run(input_ids=ids, attention_mask=mask, **states)
    want = Reference(spec, weights)({"input_ids": ids, "attention_mask": mask, **states})
    assert sorted(got) == sorted(want)
    for name in want:  # padded positions' logits are not defined
        real = mask.astype(bool) if name == "logits" else np.ones(want[name].shape, bool)
        assert (float(np.abs(got[name][real] - want[name][real]).max())
                <= 1e-4 * max(1.0, float(np.abs(want[name]).max())))
    compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.save(str(tmp_path / "cached.onnx"))
    cached = Model(str(tmp_path / "cached.onnx")).run(
        input_ids=ids, attention_mask=mask,
        **{f"past_state.{name[len('past_states.'):]}": value.transpose(1, 0, 2) for name, value in states.items()})
    want = {name.replace("present_states.", "present_state."): value if name == "logits" else value.transpose(1, 0, 2)
            for name, value in want.items()}
    assert sorted(cached) == sorted(want)
    for name in want:
        real = mask.astype(bool) if name == "logits" else np.ones(want[name].shape, bool)
        assert (float(np.abs(cached[name][real] - want[name][real]).max())
                <= 1e-4 * max(1.0, float(np.abs(want[name]).max()))), name
    zeros = {name: np.zeros_like(value) for name, value in states.items()}
    whole = model.run(input_ids=ids[1:], attention_mask=np.ones((1, 6), np.int64),
                      **{n: v[:, 1:] for n, v in zeros.items()})["logits"]
    steps = Segments(model)
    pieces = [steps.run(input_ids=ids[1:, t:t + 1], attention_mask=np.ones((1, 1), np.int64))["logits"]
              for t in range(6)]
    np.testing.assert_allclose(np.concatenate(pieces, axis=1), whole, atol=1e-5, rtol=0)


MEMFORMER = """
tfc: 1
name: memformer
topology: {topology}
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 61, max_length: 40}}
positional: {{kind: t5, num_buckets: 8, max_distance: 16}}
block: {{placement: {placement}}}
encoder: {{layers: 2, memory_slots: {{count: 5, forgetting: {forgetting}}}}}
{decoder}
"""


@pytest.mark.parametrize("topology, placement, forgetting", [("encoder-decoder", "pre", "gru"),
                                                              ("encoder", "post", "gru"),
                                                              ("encoder-decoder", "post", "normalize")])
def test_memformer_slots_are_read_and_rewritten_segment_by_segment(topology, placement, forgetting, tmp_path):
    """Memformer: each segment's encoder reads the slots the last one wrote (the learned slots at the
    first), the writer rewrites them; through `Segments`, the compiled model matches the NumPy
    reference carrying its own slots, padded segments included, and the slots carry context."""
    decoder = "decoder: {layers: 2}\nhead: {kind: lm}" if topology == "encoder-decoder" else ""
    spec = parse_spec(MEMFORMER.format(topology=topology, placement=placement, decoder=decoder, forgetting=forgetting),
                      "memformer.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.save(str(tmp_path / "m.onnx"))
    model = Model(str(tmp_path / "m.onnx"))
    segments, reference = Segments(model), Reference(spec, weights)
    rng = np.random.default_rng(6)
    theirs = np.zeros((2, 0, 32), np.float32)
    for length in (6, 9, 4):
        feeds = {"input_ids": rng.integers(0, 61, (2, length)), "attention_mask": np.ones((2, length), np.int64)}
        feeds["attention_mask"][1, length - 2:] = 0
        if topology == "encoder-decoder":
            feeds.update(decoder_input_ids=rng.integers(0, 61, (2, 3)),
                         decoder_attention_mask=np.ones((2, 3), np.int64))
        got = segments.run(feeds)
        want = reference({**feeds, "past_memory_slots": theirs})
        theirs = want.pop("present_memory_slots")
        assert (np.abs(segments.memories["past_memory_slots"] - theirs).max()
                <= TOLERANCE * max(1.0, np.abs(theirs).max()))
        for name in want:
            real = (feeds["attention_mask"].astype(bool) if name == "last_hidden_state"
                    else np.ones(want[name].shape, bool))
            scale = max(1.0, float(np.abs(want[name]).max()))
            assert float(np.abs(got[name][real] - want[name][real]).max()) <= TOLERANCE * scale, (name, length)
    first = model.run({**feeds, "past_memory_slots": np.zeros((2, 0, 32), np.float32)})
    output = "logits" if topology == "encoder-decoder" else "last_hidden_state"
    assert np.abs(first[output] - got[output]).max() > 1e-3  # the slots carry the earlier segments


def recurrent_graph(cell: str, directions: int):
    """x (B, S, 4), a mask and (forward only) initial states -> the recurrent op's outputs."""
    from tfcompiler.ir import Graph

    g = Graph()
    gates, hidden = {"rnn": 1, "lstm": 4, "gru": 3}[cell], 3
    x = g.add1("input", attrs=dict(name="x", dtype="float32", shape=("batch_size", "sequence_length", 4), role="x"))
    mask = g.add1("input", attrs=dict(name="mask", dtype="int64", shape=("batch_size", "sequence_length"),
                                      role="padding_mask"))
    shapes = {"weight_ih": (directions, gates * hidden, 4), "weight_hh": (directions, gates * hidden, hidden),
              "bias_ih": (directions, gates * hidden), "bias_hh": (directions, gates * hidden)}
    rng = np.random.default_rng(3)
    weights = []
    for name, shape in shapes.items():
        weights.append(g.add1("param", attrs=dict(name=name, dtype="float32", shape=shape, init="matrix")))
        g.weights[name] = rng.standard_normal(shape).astype(np.float32)
    states = [g.add1("input", attrs=dict(name=f"{part}0", dtype="float32", shape=(1, "batch_size", hidden), role="x"))
              for part in (("h", "c") if cell == "lstm" else ("h",))] if directions == 1 else []
    outputs = g.add("recurrent", [x, *weights, mask, *states],
                    dict(cell=cell, nonlinearity="tanh", masked=True, stateful=bool(states)))
    g.outputs.update(zip(["y", "h_n", "c_n"], outputs))
    return g


@pytest.mark.parametrize("cell, directions", [("lstm", 1), ("gru", 1), ("rnn", 1), ("lstm", 2)])
def test_padding_anywhere_leaves_the_state_as_it_is(cell, directions):
    """A recurrent layer steps over real tokens only, wherever the pads are: a left-padded row computes
    what the row alone does from the same state, a row of pads only keeps its state, and the lowering
    (real tokens moved to the front, then back) computes the NumPy semantics."""
    from conftest import run_onnx
    from tfcompiler.ir import evaluate
    from tfcompiler.lower import to_onnx

    graph = recurrent_graph(cell, directions)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6, 4)).astype(np.float32)
    x[1, 2:], x[2, 1:4] = x[0, :4], x[0, :3]  # row 1: row 0's first 4 after 2 pads; row 2: pads in between
    mask = np.ones((4, 6), np.int64)
    mask[1, :2], mask[2, 0], mask[2, 4:], mask[3] = 0, 0, 0, 0
    feeds = {"x": x, "mask": mask}
    if directions == 1:  # rows 0-2 start from the same state
        start = rng.standard_normal((1, 4, 3)).astype(np.float32)
        start[:, 1:3] = start[:, :1]
        feeds.update({"h0": start, "c0": 2 * start} if cell == "lstm" else {"h0": start})
    want = evaluate(graph, feeds)
    got = run_onnx(to_onnx(graph, 17).serialize(), feeds)
    for name in want:
        assert float(np.abs(got[name] - want[name]).max()) <= 1e-5, name
    forward = want["y"][..., :3]  # the backward direction sees each row's own future
    np.testing.assert_allclose(forward[1, 2:], forward[0, :4], atol=1e-6)
    assert not want["y"][1, :2].any() and not want["y"][3].any()
    if directions == 1:
        np.testing.assert_allclose(forward[2, 1:4], forward[0, :3], atol=1e-6)
        np.testing.assert_allclose(want["h_n"][0, 2], want["y"][0, 2], atol=1e-6)
        np.testing.assert_allclose(want["h_n"][:, 3], feeds["h0"][:, 3])  # no real token: the state as given
