"""A decoder compiled with its KV cache computes what its forward-only graph computes: in one call
over the whole input, token by token, with the prompt fed in chunks, and in left-padded batches
(positions from the mask), for every decoder example of every kind and every shipped decoder spec.
A decoder without an incremental form says why and has no cache inputs."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from conftest import ROOT, SOURCE_NAMES, random_source
from test_components import CASES, spec_text
from tfcompiler import compile_spec, parse_spec
from tfcompiler.builders import build_graph
from tfcompiler.builders.cache import cache_form, why_left_padding_shifts, why_no_cache
from tfcompiler.language.shrink import shrink_spec

DECODER_CASES = sorted(case for case, (topology, _, _) in CASES.items() if topology == "decoder")
DECODER_SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml") if "topology: decoder" in path.read_text())
CHUNKS = (4, 1, 3, 1)  # a prompt of 4, a step, a chunk of 3, a step
PADDING = 3  # the second row's leading pads


def spec_of(case) -> object:
    return shrink_spec(case) if isinstance(case, Path) else parse_spec(spec_text(case), f"{case}.yaml")


def hf_positions(mask: np.ndarray) -> np.ndarray:
    """Hugging Face's position_ids for a left-padded batch: counted from each row's first real token."""
    positions = np.cumsum(mask, axis=-1) - 1
    return np.where(mask == 0, 1, positions)


class Cached:
    """A cached model on onnxruntime: ``run(ids, mask, positions, past)`` -> (logits, present), the
    present keys and values and the layers' fixed-size states named as the next call's inputs; ``ids``
    are token ids, or float vectors for a model that reads them."""

    def __init__(self, model):
        self.session = ort.InferenceSession(model.serialize())
        self.names = [o.name for o in self.session.get_outputs()]
        self.pasts = [i for i in self.session.get_inputs()
                      if i.name.startswith("past_key_values.") and ".encoder." not in i.name]
        self.states = [i for i in self.session.get_inputs() if i.name.startswith("past_state.")]
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.source = next(name for name in SOURCE_NAMES if name in self.inputs)

    def past_length(self, past: dict[str, np.ndarray]) -> int:
        """The keys the past holds (the mask covers them and the new tokens; a model that carries only
        fixed-size states reads the new tokens' part of it)."""
        keys = [value for name, value in past.items()
                if name.startswith("past_key_values.") and ".encoder." not in name]
        return keys[0].shape[2] if keys else 0

    def bound(self, name: str) -> float:
        """The most keys the layer's cache keeps (a sliding window's), from the present's symbolic length."""
        dim = next(o for o in self.session.get_outputs() if o.name == name.replace("past_key_values.", "present."))
        match = re.fullmatch(r"min\(.*,(\d+)\)", str(dim.shape[2]))
        return int(match.group(1)) if match else np.inf

    def empty(self, batch: int) -> dict[str, np.ndarray]:
        """No past keys and values, zero states (B, *the state's own shape)."""
        return {**{i.name: np.zeros((batch, i.shape[1], 0, i.shape[3]), np.float32) for i in self.pasts},
                **{i.name: np.zeros((batch, *i.shape[1:]), np.float32) for i in self.states}}

    def run(self, ids, mask, positions, past, keep: int | None = None):
        feeds = {self.source: ids, "attention_mask": mask, **past}
        if "position_ids" in self.inputs:  # only schemes that read positions take them
            feeds["position_ids"] = positions
        if keep is not None:
            feeds["logits_to_keep"] = np.array(keep, np.int64)
        out = dict(zip(self.names, self.session.run(None, feeds)))
        present = {name.replace("present.", "past_key_values.").replace("present_state.", "past_state."): value
                   for name, value in out.items() if name.startswith(("present.", "present_state."))}
        return out[self.names[0]], present  # logits, or a decoder's last_hidden_state without an LM head


def close(got, want, label: str) -> None:
    error = float(np.abs(got - want).max())
    assert error <= 1e-4 * max(1.0, float(np.abs(want).max())), f"{label}: {error}"


def check_cached(spec, opset: int, target: str = "portable") -> None:
    reason = why_no_cache(spec)
    compiled = compile_spec(spec, opset=opset, target=target)
    inputs = {i.name for i in compiled.model.proto.graph.input}
    if reason:  # no incremental form: the forward-only graph, and the reason in its metadata
        assert not any(name.startswith("past_key_values.") for name in inputs), reason
        metadata = {p.key: p.value for p in compiled.model.proto.metadata_props}
        assert metadata["tfcompiler.cache"] == cache_form(spec, reason) in (f"none: {reason}", "memory")
        return
    forward = ort.InferenceSession(compile_spec(spec, opset=opset, cache=False, target=target).model.serialize())
    cached = Cached(compiled.model)
    length = sum(CHUNKS)
    name, ids = random_source(spec, np.random.default_rng(7), 2, length)
    ones = np.ones(ids.shape[:2], np.int64)

    # the whole input at once is the forward-only graph
    whole, _ = cached.run(ids, ones, hf_positions(ones), cached.empty(2))
    stateful = {i.name: np.zeros((i.shape[0], 2, i.shape[2]), np.float32)  # `state: true` without a cache
                for i in forward.get_inputs() if i.name.startswith("past_states.")}
    (want,) = forward.run(["logits"], {name: ids, "attention_mask": ones, **stateful})
    close(whole, want, "one call with an empty cache")

    # left padding: the second row's real tokens shifted right by PADDING
    padded_ids = ids.copy()
    padded_ids[1, PADDING:] = ids[1, :length - PADDING]
    mask = ones.copy()
    mask[1, :PADDING] = 0
    positions = hf_positions(mask)
    padded, _ = cached.run(padded_ids, mask, positions, cached.empty(2))
    if not why_left_padding_shifts(spec):  # else generation runs rows one by one
        close(padded[1, PADDING:], whole[1, :length - PADDING], "a left-padded row")

    # the prompt then steps and chunks, with the padded batch
    past, pieces, start = cached.empty(2), [], 0
    for size in CHUNKS:
        end = start + size
        logits, past = cached.run(padded_ids[:, start:end], mask[:, end - cached.past_length(past) - size:end],
                                  positions[:, start:end], past)
        pieces.append(logits)
        start = end
    stepped = np.concatenate(pieces, axis=1)
    close(stepped[0], padded[0], "by chunks")
    close(stepped[1, PADDING:], padded[1, PADDING:], "by chunks, a left-padded row")
    keys = {name: value for name, value in past.items() if name.startswith("past_key_values.")}
    assert all(value.shape[2] == min(length, cached.bound(name)) for name, value in keys.items())
    assert all(past[i.name].shape == (2, *i.shape[1:]) for i in cached.states)

    last, _ = cached.run(ids, ones, hf_positions(ones), cached.empty(2), keep=1)
    assert last.shape[1] == 1
    close(last, whole[:, -1:], "logits_to_keep=1")


@pytest.mark.parametrize("opset", [17, 23])
@pytest.mark.parametrize("case", DECODER_CASES)
def test_cached_decoder_computes_the_forward(case, opset):
    check_cached(spec_of(case), opset)


@pytest.mark.parametrize("path", DECODER_SPECS, ids=[p.stem for p in DECODER_SPECS])
def test_shipped_decoder_caches_or_says_why(path):
    check_cached(spec_of(path), 23)


@pytest.mark.parametrize("case", ["linear_causal_decoder", "performer_causal_decoder", "rfa_gated_decoder",
                                  "performer_padded_keys_decoder"])
def test_linear_states_through_onnxruntimes_kernel(case):
    """On ort-cpu the running sums go through com.microsoft LinearAttention's past and present state."""
    check_cached(spec_of(case), 23, target="ort-cpu")
    ops = {node.op_type for node in compile_spec(spec_of(case), target="ort-cpu").model.proto.graph.node}
    assert "LinearAttention" in ops


GROUPED_CASES = ["llama_like_decoder_gqa", "multi_query_decoder", "learned_positions_decoder",
                 "scaled_sinusoidal_decoder", "interleaved_partial_rope"]


@pytest.mark.parametrize("opset", [17, 23])
@pytest.mark.parametrize("case", GROUPED_CASES)
def test_cached_attention_through_onnxruntimes_grouped_query_kernel(case, opset):
    """On ort-cpu each cached self-attention is one GroupQueryAttention (rotary before it), and the model
    says its presents may share the pasts' buffers."""
    spec = parse_spec(spec_text("rope_half_split_gqa").replace(
        "positional: {kind: rope, base: 500}", "positional: {kind: rope, layout: interleaved, rotary_dim: 6, "
        "scaling: linear, factor: 4}"), "partial.yaml") if case == "interleaved_partial_rope" else spec_of(case)
    check_cached(spec, opset, target="ort-cpu")
    model = compile_spec(spec, opset=opset, target="ort-cpu").model.proto
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("GroupQueryAttention") == spec.decoder.layers
    assert {p.key: p.value for p in model.metadata_props}["tfcompiler.cache_buffer"] == "shared"


def test_content_based_kinds_say_what_depends_on_the_whole_input():
    """Their reason is their own, not the generic one of a kind whose incremental form is not written."""
    from tfcompiler.language.kinds import ATTENTION, AttentionKind

    for kind in ("lsh", "routing", "prob_sparse", "memory_compressed"):
        assert ATTENTION.kinds[kind].no_cache_because not in ("", AttentionKind.no_cache_because), kind


def test_decoders_without_an_incremental_form_say_why():
    """The shipped decoders built on dense or pattern attention cache; the others name what stops them."""
    reasons = {path.stem: why_no_cache(spec_of(path)) for path in DECODER_SPECS}
    cached = {"adaptive-span-decoder", "alibi-decoder", "gpt2-small", "image-transformer", "image-transformer-2d",
              "llama-style", "music-transformer", "sliding-window-decoder", "sparse-transformer",
              "talking-heads-realformer", "linear-transformer", "lstm-lm"}
    assert {name for name, reason in reasons.items() if not reason} >= cached
    assert "segment memory" in reasons["transformer-xl-decoder"] and "pooling" in reasons["hourglass-lm"]
    assert "'local_rnn'" in reasons["r-transformer"]
    assert "hash buckets" in reasons["reformer-lm"] and "centroid" in reasons["routing-transformer"]
    assert "slots" in reasons["t-dmca"]
    t5 = spec_of(ROOT / "specs" / "t5-small.yaml")
    assert why_no_cache(t5) == "" and "folder" in build_graph(t5, cache=True).metadata["no_cache"]


def test_sliding_window_cache_stays_the_window_over_a_long_run():
    """Steps far past the window: the cache never grows beyond it, and the last logits are the
    forward-only graph's over the whole sequence."""
    from conftest import tiny_spec

    text = tiny_spec("decoder", "rope").replace("max_length: 32", "max_length: 160").replace(
        "block: {placement: pre}", "block: {placement: pre, attention: {kind: sliding_window, window: 6}}")
    spec = parse_spec(text, "window.yaml")
    cached = Cached(compile_spec(spec).model)
    ids = np.random.default_rng(3).integers(0, spec.model.vocab_size, (1, 150))
    past, logits = cached.empty(1), []
    for t in range(ids.shape[1]):
        held = cached.past_length(past)
        step, past = cached.run(ids[:, t:t + 1], np.ones((1, held + 1), np.int64), np.array([[t]]), past)
        logits.append(step)
        assert all(value.shape[2] == min(t + 1, 6) for value in past.values())
    forward = ort.InferenceSession(compile_spec(spec, cache=False).model.serialize())
    (want,) = forward.run(["logits"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    close(np.concatenate(logits, axis=1), want, "150 steps through a window of 6")


SEQ2SEQ_CASES = sorted(case for case, (topology, _, _) in CASES.items() if topology == "encoder-decoder")


def check_two_models(spec) -> None:
    """The encoder model once, then the decoder model by chunks and steps with its cache, computes the
    one-graph forward's logits; the one-graph compile says it has no cache and why."""
    reason = why_no_cache(spec)
    whole = compile_spec(spec)
    assert not any(i.name.startswith("past_key_values.") for i in whole.model.proto.graph.input)
    if reason:
        return
    assert "folder" in whole.graph.metadata["no_cache"]
    forward = ort.InferenceSession(compile_spec(spec, cache=False).model.serialize())
    encoder = ort.InferenceSession(compile_spec(spec, part="encoder").model.serialize())
    decoder = Cached(compile_spec(spec, part="decoder").model)
    rng = np.random.default_rng(5)
    (source_name, source), (target_name, target) = \
        random_source(spec, rng, 2, 7, "encoder"), random_source(spec, rng, 2, 9, "decoder")
    source_mask = np.ones(source.shape[:2], np.int64)
    source_mask[1, -2:] = 0  # a shorter source
    slots = {i.name: np.zeros((2, 0, i.shape[2]), np.float32)  # Memformer's encoder: the learned slots first
             for i in encoder.get_inputs() if i.name == "past_memory_slots"}
    speaker = {i.name: rng.standard_normal((2, i.shape[1])).astype(np.float32)  # a TTS decoder's speaker vectors
               for i in forward.get_inputs() if i.name == "speaker_embeddings"}
    feeds = {source_name: source, "attention_mask": source_mask, f"decoder_{target_name}": target,
             "decoder_attention_mask": np.ones(target.shape[:2], np.int64), **slots, **speaker}
    (want,) = forward.run([decoder.names[0]], feeds)
    names = [o.name for o in encoder.get_outputs()]
    encoded = dict(zip(names, encoder.run(None, {source_name: source, "attention_mask": source_mask, **slots})))
    # an encoder whose input layer shortens the source (speech frames' subsampler) gives the decoder its mask
    source_mask = encoded.get("encoder_attention_mask", source_mask)
    cross = {name.replace("present.", "past_key_values."): value for name, value in encoded.items()
             if name.startswith("present.")}
    first = {name.replace("present_state.", "past_state."): value for name, value in encoded.items()
             if name.startswith("present_state.")}  # recurrent layers that start from the encoder's states
    past, pieces, start = {**decoder.empty(2), **first}, [], 0
    for size in CHUNKS:
        end = start + size
        steps = np.tile(np.arange(start, end), (2, 1))
        logits, past = decoder.run(target[:, start:end], np.ones((2, end), np.int64), steps,
                                   {**past, **cross, **speaker, "encoder_attention_mask": source_mask})
        past = {name: value for name, value in past.items() if ".decoder." in name}
        pieces.append(logits)
        start = end
    close(np.concatenate(pieces, axis=1), want, "encoder model, then the decoder model by chunks")


SEQ2SEQ_SPECS = sorted(path for path in (ROOT / "specs").glob("*.yaml")
                       if "topology: encoder-decoder" in path.read_text())


@pytest.mark.parametrize("case", SEQ2SEQ_CASES + SEQ2SEQ_SPECS,
                         ids=SEQ2SEQ_CASES + [path.stem for path in SEQ2SEQ_SPECS])
def test_encoder_decoder_generates_with_two_models(case):
    check_two_models(spec_of(case))
