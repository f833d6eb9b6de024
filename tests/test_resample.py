"""Length-changing stacks (`resample`): the Funnel Transformer (pooled queries, pooled masks,
relative positions in tokens at every level, the segment term, the upsampling decoder) and the
Hourglass (the sequence pooled by mean or a linear projection, after a causal shift in decoders,
upsampled by repeat or a linear projection, with or without attention resampling, the last window
short or zero-filled), compiled and run on onnxruntime against the NumPy reference
(tests/reference.py) at lengths that are and are not multiples of the stride, with padding; Funnel
with and without [CLS] kept apart, other positional schemes, pre-norm. An Hourglass decoder stays
causal."""
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
name: funnel
topology: {topology}
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 61, max_length: 40}}
positional: {positional}
embedding: {{norm: layer_norm}}
block: {{placement: {placement}}}
{stack}: {{layers: {layers}, resample: {resample}}}
head: {{kind: {head}}}
"""
CASES = {
    "hourglass_decoder_linear": dict(positional="learned", placement="pre", layers=6, head="lm", topology="decoder",
                                     stack="decoder", resample="{shorten_at: [2], upsample_at: 4, stride: 3, "
                                     "queries_only: false, pooling: linear, upsampling: linear}"),
    "hourglass_decoder_two_levels": dict(positional="alibi", placement="pre", layers=5, head="lm",
                                         topology="decoder", stack="decoder",
                                         resample="{shorten_at: [1, 2], upsample_at: 4, queries_only: false}"),
    "hourglass_decoder_attention": dict(positional="learned", placement="pre", layers=5, head="lm",
                                        topology="decoder", stack="decoder",
                                        resample="{shorten_at: [2], upsample_at: 3, stride: 3, queries_only: false, "
                                        "pooling: linear, upsampling: linear, attention: true}"),
    "hourglass_decoder_zero_filled": dict(positional="learned", placement="pre", layers=4, head="lm",
                                          topology="decoder", stack="decoder",
                                          resample="{shorten_at: [1], upsample_at: 3, stride: 3, queries_only: false, "
                                          "last_window: zero_filled, attention: true}"),
    "hourglass_attention_two_levels_post_norm": dict(positional="sinusoidal", placement="post", layers=5,
                                                     head="none", resample="{shorten_at: [1, 2], upsample_at: 4, "
                                                     "queries_only: false, attention: true}"),
    "hourglass_encoder_mean": dict(positional="sinusoidal", placement="post", layers=4, head="none",
                                   resample="{shorten_at: [1], upsample_at: 3, stride: 3, queries_only: false, "
                                   "upsampling: linear}"),
    "patch_merging_two_levels": dict(positional="learned", placement="pre", layers=3, head="pooler",
                                     resample="{shorten_at: [1, 2], queries_only: false, pooling: merge, "
                                     "grid_width: 4}"),
    "grid_mean_stride_3": dict(positional="sinusoidal", placement="post", layers=2, head="none",
                               resample="{shorten_at: [1], stride: 3, queries_only: false, grid_width: 6}"),
    "funnel_decoder": dict(positional="funnel", placement="post", layers=7, head="none",
                           resample="{shorten_at: [2, 3], upsample_at: 5, separate_cls: true, truncate: true}"),
    "funnel_base_no_cls": dict(positional="{kind: funnel, segments: false}", placement="post", layers=4,
                               head="none", resample="{shorten_at: [1, 3], stride: 3}"),
    "cls_kept_untruncated_classifier": dict(positional="funnel", placement="post", layers=3, head="classifier",
                                            resample="{shorten_at: [1], separate_cls: true}"),
    "pre_norm_learned_positions": dict(positional="learned", placement="pre", layers=5, head="none",
                                       resample="{shorten_at: [1, 2], upsample_at: 4}"),
}


def spec_text(case: dict) -> str:
    return SPEC.format(**{"topology": "encoder", "stack": "encoder", **case})


def compiled(case, tmp_path):
    spec = parse_spec(spec_text(CASES[case]), f"{case}.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    session = ort.InferenceSession(compile_spec(spec, weights=str(tmp_path / "w.safetensors")).model.serialize())
    return spec, weights, session


@pytest.mark.parametrize("case", sorted(CASES))
def test_resampled_stack_matches_the_reference(case, tmp_path):
    spec, weights, session = compiled(case, tmp_path)
    names = [i.name for i in session.get_inputs()]
    rng = np.random.default_rng(3)
    for batch, length, pad in [(1, 8, 0), (3, 13, 4), (2, 6, 1)]:
        feeds = {"input_ids": rng.integers(0, 61, (batch, length)),
                 "attention_mask": np.ones((batch, length), np.int64)}
        feeds["attention_mask"][0, length - pad:] = 0
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.concatenate(
                [np.full((batch, 1), 2), np.sort(rng.integers(0, 2, (batch, length - 1)))], axis=1)
        got = dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))
        want = Reference(spec, weights)(feeds)
        for name in want:
            assert got[name].shape == want[name].shape, (name, length)
            scale = max(1.0, float(np.abs(want[name]).max()))
            assert float(np.abs(got[name] - want[name]).max()) <= TOLERANCE * scale, (name, length)


@pytest.mark.parametrize("case", ["hourglass_decoder_linear", "hourglass_decoder_two_levels",
                                  "hourglass_decoder_attention", "hourglass_decoder_zero_filled"])
def test_hourglass_decoder_is_causal(case, tmp_path):
    """Changing token t changes no logits before t (the causal shift keeps every window in the past)."""
    _, _, session = compiled(case, tmp_path)
    ids = np.random.default_rng(4).integers(0, 61, (1, 14))
    mask = np.ones_like(ids)
    before = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    for t in (5, 9, 13):
        changed = ids.copy()
        changed[0, t] = (changed[0, t] + 1) % 61
        after = session.run(None, {"input_ids": changed, "attention_mask": mask})[0]
        np.testing.assert_allclose(after[:, :t], before[:, :t], atol=1e-6)
        assert np.abs(after[:, t] - before[:, t]).max() > 1e-4


@pytest.mark.parametrize("resample, message", [
    ("{shorten_at: [0]}", "distinct layers in 1..4"),
    ("{shorten_at: [2], upsample_at: 1}", "must come after the last pooling"),
    ("{shorten_at: [2], truncate: true}", "only applies with separate_cls"),
    ("{shorten_at: [2], strid: 3}", "did you mean 'stride'"),
    ("{shorten_at: [2], separate_cls: true, pooling: linear}", "mean pooling and repeat upsampling only"),
    ("{shorten_at: [1, 2], queries_only: false, grid_width: 6}", r"must be divisible by stride\^poolings = 4"),
    ("{shorten_at: [1], upsample_at: 3, queries_only: false, grid_width: 4}", "no upsampling"),
    ("{shorten_at: [1], upsample_at: 3, attention: true}", "attention resample the Hourglass's way"),
    ("{shorten_at: [1], separate_cls: true, last_window: zero_filled}", "zero_filled resample the Hourglass's way"),
])
def test_resample_rules(resample, message):
    text = spec_text(dict(CASES["pre_norm_learned_positions"], resample=resample))
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "bad.yaml")
