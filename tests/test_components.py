"""Every component, compiled to ONNX and run on onnxruntime, against the NumPy reference of its
paper (tests/references/): the spine cases below (BERT-, Llama-, paper-like models, multi-query and
grouped-query heads, both FFN kinds and chunking, per-layer overrides and positional schemes, reversible
blocks) and every example spec a kind registers with its builder (``examples=`` in
tfcompiler/builders/**: each input layer, positional scheme, attention kind and head), each at three
opsets; a registered kind without an example fails ``test_every_kind_has_an_example``.

Weights are random everywhere (biases and norm scales too, so a dropped bias cannot hide) and scaled
so activations and attention logits are unit-scale: tolerance 1e-4 absolute, fp32.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from tfcompiler import compile_spec, parse_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.weights import declared_params
from tfcompiler.language.kinds import ATTENTION, HEADS, INPUTS, POSITIONS

import references
from conftest import whole_input
from references import Reference

TOLERANCE = 1e-4
SHAPES = [(1, 5, 0), (3, 11, 4)]  # (batch, length, padded positions at the end of the first row)

BASE = """
tfc: 1
name: {name}
topology: {topology}
model: {{width: 32, ffn_width: 48, vocab_size: 61, max_length: 40{model}}}
"""

# Cases that combine many spine features; a case about one kind lives with that kind's builder.
SPINE = {
    "bert_like_encoder": ("encoder", "", """
input: {kind: tokens, token_types: 3}
positional: learned
embedding: {norm: layer_norm, norm_epsilon: 1e-12}
block: {placement: post, norm: {epsilon: 1e-12}, ffn: {activation: gelu}}
encoder: {layers: 2}
head: {kind: pooler}
"""),
    "bert_like_chunked_ffn": ("encoder", "", """
input: {kind: tokens, token_types: 3}
positional: learned
embedding: {norm: layer_norm, norm_epsilon: 1e-12}
block: {placement: post, norm: {epsilon: 1e-12}, ffn: {activation: gelu, chunk: 4}}
encoder: {layers: 2}
head: {kind: pooler}
"""),
    "llama_like_chunked_swiglu": ("decoder", ", kv_heads: 2, bias: false", """
positional: {kind: rope}
block: {placement: pre, norm: {kind: rms_norm, epsilon: 1e-6}, ffn: {activation: swiglu, chunk: 3}}
decoder: {layers: 2}
head: {kind: lm, tied: false}
"""),
    "llama_like_decoder_gqa": ("decoder", ", kv_heads: 2, bias: false", """
positional: none
block: {placement: pre, norm: {kind: rms_norm, epsilon: 1e-6}, ffn: {activation: swiglu}}
decoder: {layers: 2}
head: {kind: lm, tied: false, bias: true}
"""),
    "multi_query_decoder": ("decoder", ", kv_heads: 1", """
positional: {kind: sinusoidal, layout: concatenated}
block: {ffn: {activation: gelu_tanh}}
decoder: {layers: 2}
head: {kind: lm}
"""),
    "paper_encoder_decoder": ("encoder-decoder", "", """
positional: {kind: sinusoidal, layout: interleaved}
embedding: {scale: true}
block: {placement: post, ffn: {activation: relu}}
encoder: {layers: 2}
decoder: {layers: 2}
head: {kind: lm}
"""),
    "unshared_encoder_decoder_geglu": ("encoder-decoder", "", """
positional: learned
embedding: {shared: false}
block: {placement: pre, ffn: {activation: geglu}}
encoder: {layers: 1}
decoder: {layers: 2, final_norm: false}
"""),
    "classifier_decoupled_heads": ("encoder", ", head_width: 16", """
embedding: {scale: 2.5}
block: {ffn: {activation: silu}, attention: {kind: multi_head, scale: 1.0}}
encoder: {layers: 2}
head: {kind: classifier, labels: 3}
"""),
    "rope_with_nope_layer": ("decoder", ", kv_heads: 2", """
positional: rope
decoder:
  layers: 3
  overrides:
    - layers: [1, 1]
      block: {positional: none}
    - layers: [2, 2]
      block: {positional: {kind: alibi}}
head: {kind: lm}
"""),
    "reversible_lsh_decoder": ("decoder", "", """
positional: learned
block: {placement: reversible, attention: {kind: lsh, buckets: 4, rounds: 2, chunk: 4, same_bucket: false,
        look_back: rolled, scale: 1.0}, ffn: {activation: relu, chunk: 3}}
decoder: {layers: 2}
head: {kind: lm, tied: false, bias: true}
"""),
    "per_layer_overrides": ("decoder", "", """
block: {placement: pre}
decoder:
  layers: 3
  overrides:
    - layers: [1, 1]
      block: {placement: post, ffn: {activation: relu}, norm: {kind: rms_norm}}
    - layers: [2, 2]
      block: {attention: {scale: 0.5}}
head: {kind: lm}
"""),
}


REGISTRIES = (INPUTS, POSITIONS, ATTENTION, HEADS)


def example_case(name: str, text: str) -> tuple[str, str, str]:
    """A registered example as (topology, extra model keys, the other sections): its leading
    `topology:` line and optional one-line `model: {...}` (keys added to the test sizes)."""
    lines = text.lstrip("\n").splitlines(keepends=True)
    head = {}
    while lines and lines[0].split(":")[0] in ("topology", "model"):
        key, value = lines.pop(0).split(":", 1)
        head[key] = value.strip()
    assert "topology" in head, f"example {name!r} must open with its `topology:` line"
    model = head.get("model", "{}")
    assert model.startswith("{") and model.endswith("}"), f"example {name!r}: `model:` must be a one-line mapping"
    return head["topology"], f", {model[1:-1]}" if model[1:-1].strip() else "", "\n" + "".join(lines)


def registered_examples() -> dict[str, tuple[str, str, str]]:
    """Every example of every registered kind, by name (names are unique across registries)."""
    cases = {}
    for registry in REGISTRIES:
        for kind, examples in registry.examples.items():
            for name, text in examples.items():
                assert name not in cases and name not in SPINE, f"example name {name!r} used twice"
                cases[name] = example_case(name, text)
    return cases


CASES = {**SPINE, **registered_examples()}


def spec_text(case: str) -> str:
    topology, model, rest = CASES[case]
    if " heads:" not in model:
        model = ", heads: 4" + model
    return BASE.format(name=case, topology=topology, model=model) + rest


def random_weights(spec, seed: int = 0) -> dict[str, np.ndarray]:
    """Unit-scale random weights for every declared parameter of the spec."""
    return unit_scale_weights(declared_params(build_graph(spec)), seed)


def unit_scale_weights(params: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights for {name: (shape, init)} that keep activations and logits unit-scale."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (shape, init) in params.items():
        if init == "matrix":
            w = rng.standard_normal(shape) / np.sqrt(shape[0])
        elif init == "embedding":
            w = rng.standard_normal(shape)
        elif init == "ones":
            w = 1 + 0.2 * rng.standard_normal(shape)
        else:
            w = 0.2 * rng.standard_normal(shape)
        out[name] = w.astype(np.float32)
    return out


SERIES_INPUTS = ("past_values", "past_time_features", "past_observed_mask", "future_values", "future_time_features",
                 "static_real_features")


def feeds_for(session: ort.InferenceSession, batch: int, length: int, pad: int, vocab: int, seed: int):
    rng = np.random.default_rng(seed)
    ranges = json.loads(session.get_modelmeta().custom_metadata_map.get("tfcompiler.io_ranges", "{}"))
    roles = json.loads(session.get_modelmeta().custom_metadata_map.get("tfcompiler.io_roles", "{}"))
    feeds = {}
    for i in session.get_inputs():
        n = length + 2 if i.name.startswith(("decoder_", "future_")) else length  # decoder length differs
        if i.name.endswith("attention_mask"):
            n = 4 * n if i.shape[-1] == "frames" else n  # the frames' mask
            mask = np.ones((batch, n), np.int64)
            if pad:
                mask[0, n - pad:] = 0
            feeds[i.name] = mask
        elif i.name == "global_attention_mask":
            feeds[i.name] = (rng.random((batch, n)) < 0.3).astype(np.int64)
        elif i.name.endswith("token_type_ids"):
            feeds[i.name] = rng.integers(0, 3, (batch, n))
        elif roles.get(i.name) == "intensities":  # an image's raster (B, S) or its pixels (B, S, C), 0..255
            feeds[i.name] = rng.integers(0, ranges[i.name], (batch, n, *i.shape[2:]))
        elif i.name == "pixel_values":  # an image (B, C, H, W) of fixed size: `length` does not apply
            feeds[i.name] = rng.standard_normal((batch, *i.shape[1:])).astype(np.float32)
        elif i.name == "input_features":  # speech frames (B, T, F): a few per state after subsampling
            feeds[i.name] = rng.standard_normal((batch, 4 * n, i.shape[-1])).astype(np.float32)
        elif i.type == "tensor(float)" and i.name.endswith(("inputs_embeds", "node_features", "eigenvectors",
                                                             "input_values")):  # vectors, nodes, mel frames
            feeds[i.name] = rng.standard_normal((batch, n, i.shape[-1])).astype(np.float32)  # (B, S, F)
        elif i.name == "speaker_embeddings":  # one vector per row (B, F)
            feeds[i.name] = rng.standard_normal((batch, i.shape[-1])).astype(np.float32)
        elif i.name == "adjacency":  # (B, N, N) random edges, and every node attends node 0 (none attends nothing)
            feeds[i.name] = (rng.random((batch, n, n)) < 0.4).astype(np.int64)
            feeds[i.name][:, :, 0] = 1
        elif i.name in ("node_types", "edge_types"):  # (B, N) and (B, N, N) ids of a table of their own
            feeds[i.name] = rng.integers(0, ranges[i.name], (batch,) + (n,) * (len(i.shape) - 1))
        elif i.name in SERIES_INPUTS:  # a time series (B, T[, F]) and its features
            shape = [batch] + [n if isinstance(dim, str) else dim for dim in i.shape[1:]]  # its own fixed lengths
            values = rng.random(shape) * 4
            # time features as whole numbers (calendar fields: minutes 0-3), so that a float16 copy of the input
            # truncates to the same field as the float32 one
            feeds[i.name] = (values > 1).astype(np.float32) if i.name.endswith("observed_mask") else \
                np.floor(values).astype(np.float32) if "time" in i.name else \
                rng.standard_normal(shape).astype(np.float32)
        elif i.name == "static_categorical_features":
            feeds[i.name] = rng.integers(0, 3, (batch, i.shape[1]))
        elif i.name in ("states", "actions", "returns_to_go"):  # a trajectory's steps (B, T, F)
            feeds[i.name] = rng.standard_normal((batch, n, i.shape[-1])).astype(np.float32)
        elif i.name == "timesteps":  # rows of the timestep table (max_ep_len)
            feeds[i.name] = rng.integers(0, ranges[i.name], (batch, n))
        elif i.name.startswith("past_states."):  # a recurrent layer's first state (directions, B, H)
            feeds[i.name] = rng.standard_normal((i.shape[0], batch, i.shape[2])).astype(np.float32)
        elif not i.name.startswith(("past_key_values.", "past_state.")) and i.name != "position_ids":
            feeds[i.name] = rng.integers(0, vocab, (batch, n))
    return whole_input(session, feeds)


def real_positions(feeds, output: str, shape) -> np.ndarray:
    """Where an output is defined: not at padded positions, whose query may see no key at all
    (a span or window that only reaches padding) and whose output is then arbitrary."""
    prefix = "decoder_" if "decoder_input_ids" in feeds and not output.startswith("encoder") else ""
    mask = feeds.get(f"{prefix}attention_mask")
    if output.startswith("present.") and mask is not None:  # cached keys and values (B, H, T, Dh): the last T
        return np.broadcast_to((mask[:, mask.shape[1] - shape[2]:] != 0)[:, None, :, None], shape)
    if mask is None or len(shape) < 2 or shape[1] != mask.shape[1]:
        return np.ones(shape, bool)
    return np.broadcast_to((mask != 0).reshape(mask.shape + (1,) * (len(shape) - 2)), shape)


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("weights")


@functools.cache
def prepared(case: str, weights_dir: Path):
    """A case's spec, its weights (saved once for the three opsets) and its reference's outputs, by shape
    (the same feeds at every opset)."""
    spec = parse_spec(spec_text(case), f"{case}.yaml")
    weights = random_weights(spec)
    path = weights_dir / f"{case}.safetensors"
    save_file(weights, str(path))
    return spec, path, Reference(spec, weights), {}


@pytest.mark.parametrize("opset", [17, 20, 23])
@pytest.mark.parametrize("case", sorted(CASES))
def test_compiled_model_matches_paper_reference(case, opset, weights_dir):
    spec, path, reference, wanted = prepared(case, weights_dir)
    compiled = compile_spec(spec, weights=str(path), opset=opset)
    session = ort.InferenceSession(compiled.model.serialize())
    for batch, length, pad in SHAPES:
        feeds = feeds_for(session, batch, length, pad, spec.model.vocab_size, seed=length)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        got = {name: value for name, value in got.items()
               if not name.startswith(("present.", "present_state."))}  # test_cache's
        if (batch, length, pad) not in wanted:
            wanted[batch, length, pad] = reference(feeds)
        want = wanted[batch, length, pad]
        assert sorted(got) == sorted(want)
        for name in want:
            assert got[name].shape == want[name].shape, name
            real = real_positions(feeds, name, got[name].shape)
            scale = max(1.0, float(np.abs(want[name][real]).max()))
            error = float(np.abs(got[name][real] - want[name][real]).max())
            assert error <= TOLERANCE * scale, f"{name} at {(batch, length, pad)}: {error}"


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda registry: registry.name)
def test_every_kind_has_an_example(registry):
    """A kind is tested through its examples: each registered kind declares at least one."""
    missing = sorted(kind for kind in registry.kinds if not registry.examples.get(kind))
    assert not missing, f"{registry.name} kinds without an example spec (register(..., examples=...)): {missing}"


@pytest.mark.parametrize("registry, tested", [(INPUTS, references.INPUTS), (POSITIONS, references.POSITIONS),
                                             (ATTENTION, references.ATTENTION), (HEADS, references.HEADS)],
                         ids=[registry.name for registry in REGISTRIES])
def test_every_kind_has_a_reference(registry, tested):
    """Each kind the compiler registers has its NumPy reference (tests/references/), and no other."""
    assert sorted(tested.kinds) == sorted(registry.kinds)


def kinds_used(section, registry) -> set[str]:
    """The kinds of `registry` anywhere in a parsed spec (its sections, lists and blocks)."""
    if isinstance(section, (list, tuple)):
        return set().union(*(kinds_used(item, registry) for item in section))
    if not dataclasses.is_dataclass(section):
        return set()
    found = {type(section).KIND} if type(section) in registry.kinds.values() else set()
    return found.union(*(kinds_used(getattr(section, f.name), registry) for f in dataclasses.fields(section)))


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda registry: registry.name)
def test_every_example_uses_its_kind(registry):
    for kind, examples in registry.examples.items():
        for name in examples:
            spec = parse_spec(spec_text(name), f"{name}.yaml")
            used = kinds_used([spec, *(block for _, _, blocks in spec.stacks() for block in blocks)], registry)
            assert kind in used, f"{registry.name} example {name!r} does not use kind {kind!r}: {sorted(used)}"


@pytest.mark.parametrize("case", ["last_token_pooler", "decoder_last_token_score"])
def test_last_token_heads_read_left_padded_rows(case, weights_dir):
    """pooling: last reads the rightmost real token wherever the padding is: left-padded rows (as
    decoders batch prompts) against the reference, which takes the last position the mask marks."""
    spec, path, reference, _ = prepared(case, weights_dir)
    session = ort.InferenceSession(compile_spec(spec, weights=str(path)).model.serialize())
    feeds = feeds_for(session, 3, 9, 0, spec.model.vocab_size, seed=5)
    feeds["attention_mask"][0, :4] = 0  # left padding
    feeds["attention_mask"][1, 7:] = 0  # right padding
    output = session.get_outputs()[-1].name
    (got,), want = session.run([output], feeds), reference(feeds)[output]
    assert np.abs(got - want).max() <= TOLERANCE * max(1.0, float(np.abs(want).max()))
    feeds["attention_mask"][0, 4:] = 0  # a row without real tokens takes the same (its output is not defined)
    assert np.isfinite(session.run([output], feeds)[0]).all()


@pytest.mark.parametrize("case, change, message", [
    ("decoder_last_token_score", ("pooling: last", "pooling: first"),
     "head.pooling: 'classifier' over a causal stack reads its last real token"),
    ("masked_lm_head", ("kind: lm", "kind: span"), "head.transform: 'transform' is an option of the lm head"),
    ("gelu_pooler_classifier", ("kind: classifier", "kind: lm"),
     "head.activation: 'activation' is an option of the pooler and classifier head"),
    ("last_token_pooler", ("pooling: last", "pooling: last, dense: false"),
     "head.dense: 'dense' is an option of the classifier head")])
def test_head_options_refused_where_they_mean_nothing(case, change, message):
    """A head option another kind reads, or a first-token pooler over a causal stack (that token has
    seen only itself), is a located error rather than a head that silently ignores it."""
    from tfcompiler.errors import SpecError

    with pytest.raises(SpecError, match=message):
        parse_spec(spec_text(case).replace(*change), "x.yaml")


PADDING_CASES = [("bert_like_encoder", 17), ("bert_like_encoder", 23), ("longformer_encoder", 23),
                 ("bigbird_encoder", 23), ("bigbird_first_and_last_global", 23), ("routing_encoder", 17),
                 ("reformer_lsh_encoder", 17),
                 ("reformer_trax_lsh_encoder", 17),
                 ("clustered_encoder", 17), ("informer_prob_sparse", 17), ("performer_encoder", 17),
                 ("conditional_embeddings", 17), ("conditional_after_first_block", 17)]


@pytest.mark.parametrize("case, opset", PADDING_CASES)
def test_padding_changes_only_what_it_should(case, opset):
    """A padded key must not influence unpadded queries: the first row's real positions give the
    same encoder output whatever token sits in the padding. So in the layers after the first what a
    padded position holds reaches no real one either: not through a blocked `Attention` op (which
    leaves a query without keys at zero), nor through routing, LSH buckets, k-means seeds or
    ProbSparse's samples and top queries (padding ranks last), nor through a convolution (padding
    reads as zeros). Performer's key stabiliser spans the padding: equal up to rounding."""
    spec = parse_spec(spec_text(case))
    session = ort.InferenceSession(compile_spec(spec, seed=3, opset=opset).model.serialize())
    feeds = feeds_for(session, 1, 9, 3, spec.model.vocab_size, seed=0)
    first = session.run(["last_hidden_state"], feeds)[0]
    feeds["input_ids"][0, -3:] = (feeds["input_ids"][0, -3:] + 7) % spec.model.vocab_size
    second = session.run(["last_hidden_state"], feeds)[0]
    np.testing.assert_allclose(first[0, :6], second[0, :6], atol=1e-6 if case == "performer_encoder" else 0, rtol=0)
    assert np.abs(first[0, 6:] - second[0, 6:]).max() > 1e-3


def test_causal_decoder_ignores_the_future():
    spec = parse_spec(spec_text("llama_like_decoder_gqa"))
    session = ort.InferenceSession(compile_spec(spec, seed=3).model.serialize())
    feeds = feeds_for(session, 1, 8, 0, spec.model.vocab_size, seed=0)
    first = session.run(["logits"], feeds)[0]
    feeds["input_ids"][0, 5:] = (feeds["input_ids"][0, 5:] + 1) % spec.model.vocab_size
    second = session.run(["logits"], feeds)[0]
    np.testing.assert_array_equal(first[0, :5], second[0, :5])
    assert np.abs(first[0, 5:] - second[0, 5:]).max() > 1e-3


def test_sinusoidal_layouts_differ_and_match_the_formula():
    """Interleaved (paper) and concatenated (tensor2tensor) tables are the formula's two layouts."""
    from references import sinusoidal_table

    inter, concat = sinusoidal_table(10, 8, "interleaved"), sinusoidal_table(10, 8, "concatenated")
    assert np.allclose(inter[3, 0], np.sin(3.0)) and np.allclose(inter[3, 1], np.cos(3.0))
    assert np.allclose(concat[:, :4], inter[:, 0::2]) and np.allclose(concat[:, 4:], inter[:, 1::2])


def assert_matches_reference(session, spec, weights, shapes):
    """Every output at the real positions of each (batch, length, padded) input within TOLERANCE of
    the reference, relative to its scale."""
    reference = Reference(spec, weights)
    for batch, length, pad in shapes:
        feeds = feeds_for(session, batch, length, pad, spec.model.vocab_size, seed=length)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        for name, want in reference(feeds).items():
            real = real_positions(feeds, name, got[name].shape)
            scale = max(1.0, float(np.abs(want[real]).max()))
            assert float(np.abs(got[name][real] - want[real]).max()) <= TOLERANCE * scale, (name, length)


@pytest.mark.parametrize("case", ["linear_causal_decoder", "performer_causal_decoder", "rfa_gated_decoder"])
def test_causal_linear_attention_across_chunks(case, weights_dir):
    """The chunked lowering carries its running sums from chunk to chunk (chunks of 64): lengths of
    two and three chunks, the last one partial, match the step-by-step reference."""
    spec = parse_spec(spec_text(case).replace("max_length: 40", "max_length: 160"), f"{case}.yaml")
    weights = random_weights(spec)
    path = weights_dir / f"{case}-chunks.safetensors"
    save_file(weights, str(path))
    session = ort.InferenceSession(compile_spec(spec, weights=str(path)).model.serialize())
    assert_matches_reference(session, spec, weights, [(1, 128, 0), (2, 150, 7)])


@pytest.mark.parametrize("case", ["performer_encoder", "performer_conventions_encoder"])
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_performer_keys_and_queries_by_chunks(kv_heads, case, weights_dir, monkeypatch):
    """Bidirectional FAVOR+ takes keys and queries by chunks of tokens (tfcompiler.lower.favor): with
    chunks of 4, lengths of one, three (the last partial) chunks and a padded row match the reference
    (with performer-pytorch's conventions too: ε after each chunk's own stabiliser would be wrong)."""
    from tfcompiler.lower import favor

    monkeypatch.setattr(favor, "FAVOR_CHUNK", 4)
    spec = parse_spec(spec_text(case).replace("max_length: 40", f"max_length: 40, kv_heads: {kv_heads}"))
    weights = random_weights(spec)
    path = weights_dir / f"{case}-chunks-{kv_heads}.safetensors"
    save_file(weights, str(path))
    model = compile_spec(spec, weights=str(path), opset=23).model
    assert [n.name.rsplit("/", 1)[-1] for n in model.proto.graph.node if n.op_type == "Loop"].count("FavorKeys") == 2
    session = ort.InferenceSession(model.serialize())
    assert_matches_reference(session, spec, weights, [(1, 4, 0), (2, 11, 3)])


@pytest.mark.parametrize("scale", ["per_head", "global"])
def test_nystrom_segments_without_a_real_key_are_no_landmarks(scale, weights_dir):
    """Xiong et al.'s landmarks are means of real tokens: a segment of padding only (32 tokens, 8 landmarks,
    4 trailing pads) or past the end (9 tokens, 8 landmarks: segments of 2) is none, and no query attends
    it (the reference leaves it out). With per-head Z₀ the padded row is the row alone and its unpadded
    batch mate is what it is alone."""
    case = f"nystrom-{scale}"
    spec = parse_spec(spec_text("nystrom_encoder").replace("landmarks: 4", f"landmarks: 8, pinv_scale: {scale}"),
                      f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(weights_dir / f"{case}.safetensors"))
    session = ort.InferenceSession(compile_spec(spec, weights=str(weights_dir / f"{case}.safetensors")).model
                                   .serialize())
    assert_matches_reference(session, spec, weights, [(2, 32, 4), (2, 9, 0), (1, 9, 3)])
    if scale == "per_head":
        ids = np.random.default_rng(3).integers(0, spec.model.vocab_size, (2, 32))
        mask = np.ones_like(ids)
        mask[0, 28:] = 0
        (both,) = session.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask})
        for row, length in ((0, 28), (1, 32)):
            alone = ids[row:row + 1, :length]
            (want,) = session.run(["last_hidden_state"], {"input_ids": alone, "attention_mask": np.ones_like(alone)})
            np.testing.assert_allclose(both[row, :length], want[0], atol=TOLERANCE, rtol=0)


def test_token_classifier_needs_one_stack():
    """An encoder-decoder's tokens are the decoder's, read with the encoder's: a token classifier there
    is refused at the head's kind, not built over one of them silently (the span head reads the decoder's,
    as T5's question answering does: the spine case span_encoder_decoder)."""
    from tfcompiler.errors import SpecError

    text = spec_text("span_encoder_decoder").replace("kind: span", "kind: token_classifier")
    with pytest.raises(SpecError, match="head.kind: 'token_classifier' labels the tokens of one stack"):
        parse_spec(text, "x.yaml")
