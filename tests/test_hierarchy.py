"""Hierarchical models (topology `hierarchical`): HIBERT's sentence encoder then document encoder and
Hi-Transformer's interleaved layers, compiled and run on onnxruntime against the NumPy reference
that reads one sentence at a time (tests/reference.py), for every sentence pooling, with padded
tokens and whole padded sentences, at two document shapes (sentences and sentence length are
dynamic). A padded sentence changes nothing in the real ones."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from safetensors.numpy import save_file

from reference import Reference
from test_components import TOLERANCE, random_weights
from tfcompiler import compile_spec, parse_spec
from tfcompiler.errors import SpecError

SPEC = """
tfc: 1
name: hierarchy
topology: hierarchical
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 61, max_length: 24}}
input: {{kind: tokens, token_types: {types}}}
positional: {positional}
block: {{placement: {placement}}}
encoder: {{layers: 2}}
document: {{layers: {document_layers}, pooling: {pooling}, interleaved: {interleaved}}}
head: {{kind: {head}}}
"""
CASES = {
    "hibert_last": dict(positional="learned", placement="post", pooling="last", interleaved="false",
                        document_layers=1, head="none", types=0),
    "hibert_first_sinusoidal_classifier": dict(positional="sinusoidal", placement="pre", pooling="first",
                                               interleaved="false", document_layers=2, head="classifier", types=2),
    "hi_transformer_mean": dict(positional="learned", placement="pre", pooling="mean", interleaved="true",
                                document_layers=2, head="pooler", types=0),
    "hi_transformer_attention_pool_t5": dict(positional="{kind: t5, num_buckets: 8, max_distance: 16}",
                                             placement="pre", pooling="attention", interleaved="true",
                                             document_layers=2, head="none", types=0),
}


def compiled(case, tmp_path):
    spec = parse_spec(SPEC.format(**CASES[case]), f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    model = compile_spec(spec, weights=str(tmp_path / "w.safetensors"))
    return spec, weights, ort.InferenceSession(model.model.serialize())


def documents(batch, sentences, length, seed, token_types):
    """Random documents; the first has its last sentence padded away and a short second sentence."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 61, (batch, sentences, length))
    mask = np.ones_like(ids)
    mask[0, -1] = 0
    mask[0, 1, length // 2:] = 0
    feeds = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        feeds["token_type_ids"] = rng.integers(0, token_types, ids.shape)
    return feeds


def run(session, feeds):
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hierarchy_matches_the_reference(case, tmp_path):
    spec, weights, session = compiled(case, tmp_path)
    for shape, seed in [((2, 3, 5), 0), ((3, 4, 7), 1)]:
        feeds = documents(*shape, seed, CASES[case]["types"])
        got, want = run(session, feeds), Reference(spec, weights)(feeds)
        assert sorted(got) == sorted(want)
        # A sentence of padding alone attends to no real token: its states are not defined (the
        # opset-23 Attention kernel gives zeros where the decomposed softmax averages every key).
        real = feeds["attention_mask"].any(-1)
        for name in want:
            assert got[name].shape == want[name].shape, name
            if got[name].shape[:2] == real.shape:  # per sentence, or per token of each sentence
                got[name], want[name] = got[name][real], want[name][real]
            scale = max(1.0, float(np.abs(want[name]).max()))
            assert float(np.abs(got[name] - want[name]).max()) <= TOLERANCE * scale, (name, shape)


@pytest.mark.parametrize("case", ["hibert_last", "hi_transformer_mean"])
def test_a_padded_sentence_changes_nothing(case, tmp_path):
    _, _, session = compiled(case, tmp_path)
    feeds = documents(1, 3, 6, 2, 0)
    feeds["attention_mask"][:] = 1
    padded = {name: np.concatenate([x, np.zeros_like(x[:, :1])], axis=1) for name, x in feeds.items()}
    got, longer = run(session, feeds), run(session, padded)
    np.testing.assert_allclose(longer["token_hidden_state"][:, :3], got["token_hidden_state"], atol=1e-5)
    if "last_hidden_state" in got:
        np.testing.assert_allclose(longer["last_hidden_state"][:, :3], got["last_hidden_state"], atol=1e-5)
    if "pooler_output" in got:
        np.testing.assert_allclose(longer["pooler_output"], got["pooler_output"], atol=1e-5)


@pytest.mark.parametrize("change, message", [
    ("document: {layers: 1, interleaved: true}", "needs 2 layers, got 1"),
    ("head: {kind: lm}", "outputs sentence vectors"),
    ("document: null", "needs a `document` section"),
    ("document: {layers: 1, pooling: maen}", "did you mean 'mean'"),
])
def test_hierarchy_rules(change, message):
    base = SPEC.format(**CASES["hibert_last"])
    key = change.split(":")[0]
    text = "\n".join(line for line in base.splitlines() if not line.startswith(key + ":")) + "\n" + change
    with pytest.raises(SpecError, match=message):
        parse_spec(text.replace("document: null", ""), "bad.yaml")
