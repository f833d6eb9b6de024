"""Parity of the `bigbird` kind's random-block layouts with Hugging Face's BigBirdModel
(attention_type block_sparse) built from a small config with random weights (no downloads): its
eval-mode layout imported by `tfc import-hf` (`layout: first_block`), and a layout given as data
(`layout: given`, per layer) against the same layout handed to Hugging Face's sampler; padded batches
included, fp32 1e-4 on the real positions (Hugging Face zeroes padded ones)."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from tfcompiler import compile_spec, parse_spec
from tfcompiler.cli import main

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
BLOCK, RANDOM, LENGTH = 4, 2, 64  # Hugging Face attends in full at (5 + 2·RANDOM)·BLOCK = 36 tokens or fewer
PIPELINES = {"default": "block_sparse_attention", "none": "attention"}  # gathered key blocks; the dense mask


def big_bird(seed: int):
    config = transformers.BigBirdConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                        intermediate_size=128, vocab_size=100, max_position_embeddings=LENGTH,
                                        type_vocab_size=2, attention_type="block_sparse", block_size=BLOCK,
                                        num_random_blocks=RANDOM)
    model = transformers.BigBirdModel(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # every parameter random, norms and biases included, so none can be silently dropped
        for name, p in model.named_parameters():
            scale = 0.2 if p.dim() == 1 else 1 / np.sqrt(p.shape[-1])
            p.copy_((1.0 if name.endswith("weight") and p.dim() == 1 else 0.0)
                    + scale * torch.randn(p.shape, generator=generator))
    return model.eval()


def inputs(batch: int, length: int, pad: int, seed: int):
    rng = np.random.default_rng(seed)
    ids, types = rng.integers(1, 100, (batch, length)), rng.integers(0, 2, (batch, length))
    mask = np.ones((batch, length), np.int64)
    mask[0, length - pad:] = 0
    return ids, types, mask


def hugging_face(model, ids, types, mask) -> np.ndarray:
    """last_hidden_state, checking that Hugging Face really ran its block-sparse attention."""
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                    attention_mask=torch.from_numpy(mask)).last_hidden_state.numpy()
    assert model.attention_type == "block_sparse", "Hugging Face fell back to full attention"
    return out


def ours(session, ids, types, mask) -> np.ndarray:
    return session.run(["last_hidden_state"], {"input_ids": ids, "token_type_ids": types, "attention_mask": mask})[0]


def error(got, want, mask) -> float:
    real = mask.astype(bool)
    return float(np.abs(got[real] - want[real]).max()) / max(1.0, float(np.abs(want[real]).max()))


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    """The model, its import (spec text) and the compiled sessions of both PIPELINES."""
    folder = tmp_path_factory.mktemp("big_bird")
    model = big_bird(seed=5)
    model.save_pretrained(folder / "hf")
    assert main(["import-hf", str(folder / "hf"), "-o", str(folder / "imported")]) == 0
    spec_file, weights = folder / "imported" / "spec.yaml", str(folder / "imported" / "weights.safetensors")
    compiled = {pipeline: compile_spec(spec_file, weights=weights, pipeline=pipeline) for pipeline in PIPELINES}
    assert {pipeline: attention_ops(made) for pipeline, made in compiled.items()} == {
        pipeline: {op} for pipeline, op in PIPELINES.items()}
    sessions = {pipeline: ort.InferenceSession(made.model.serialize()) for pipeline, made in compiled.items()}
    return model, spec_file.read_text(), weights, sessions


def attention_ops(compiled) -> set[str]:
    return {compiled.graph.op(n).type for n in compiled.graph.topological()} & set(PIPELINES.values())


def test_import_writes_the_eval_mode_layout(imported):
    attention = yaml.safe_load(imported[1])["block"]["attention"]
    assert attention == {"kind": "bigbird", "block": BLOCK, "window_blocks": 3, "global_blocks": 1,
                         "trailing_global_blocks": 1, "random_blocks": RANDOM, "layout": "first_block"}


@pytest.mark.parametrize("pipeline", ["default", "none"])
@pytest.mark.parametrize("length, pad", [(LENGTH, 0), (LENGTH, 7), (45, 0), (45, 6), (37, 3)])
def test_first_block_matches_transformers_in_eval_mode(imported, pipeline, length, pad):
    """At whole blocks and not (Hugging Face pads to whole blocks; its last, global block is then the
    one the input ends in), down to the shortest length it runs block-sparse."""
    model, _, _, sessions = imported
    ids, types, mask = inputs(2, length, pad, seed=length + pad)
    assert error(ours(sessions[pipeline], ids, types, mask), hugging_face(model, ids, types, mask), mask) <= TOLERANCE


def test_block_zero_counts_once_per_random_slot(imported, tmp_path):
    """The repeats are what Hugging Face computes: the same spec with block 0 counted once (no random
    slots) is far from it."""
    model, text, weights, _ = imported
    spec = yaml.safe_load(text)
    spec["block"]["attention"]["random_blocks"] = 0
    session = ort.InferenceSession(compile_spec(parse_spec(yaml.safe_dump(spec), "x.yaml"), weights=weights)
                                   .model.serialize())
    ids, types, mask = inputs(2, LENGTH, 0, seed=1)
    assert error(ours(session, ids, types, mask), hugging_face(model, ids, types, mask), mask) > 100 * TOLERANCE


def drawn_layout(seed: int) -> np.ndarray:
    """(blocks, RANDOM) random key blocks per query block, as Hugging Face's rand_attn rows (with rows
    for the two global blocks, which see every block anyway), with repeats and window blocks among
    them: each counts once more."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, LENGTH // BLOCK, (LENGTH // BLOCK, RANDOM))
    rows[3] = [3, 3]  # its own block, twice
    rows[5] = [0, 15]  # the global blocks
    return rows


@pytest.mark.parametrize("pad", [0, 9])
def test_given_layout_matches_the_same_layout_in_transformers(imported, pad, monkeypatch):
    """A layout per layer (the first in the block, the second in an override), handed to Hugging Face's
    sampler for every head; at max_length, where both index the same blocks."""
    model, text, weights, _ = imported
    layouts = [drawn_layout(seed) for seed in (1, 2)]
    spec = yaml.safe_load(text)
    spec["block"]["attention"].update(layout="given", random_layout=layouts[0].tolist())
    second = {**spec["block"]["attention"], "random_layout": layouts[1].tolist()}  # an override's kind is whole
    spec["encoder"]["overrides"] = [{"layers": [1, 1], "block": {"attention": second}}]
    compiled = {pipeline: compile_spec(parse_spec(yaml.safe_dump(spec), "x.yaml"), weights=weights, pipeline=pipeline)
                for pipeline in PIPELINES}
    assert {pipeline: attention_ops(made) for pipeline, made in compiled.items()} == {
        pipeline: {op} for pipeline, op in PIPELINES.items()}
    for layer, layout in zip(model.encoder.layer, layouts):  # undone after the test: the model is shared
        monkeypatch.setattr(layer.attention.self, "_bigbird_block_rand_mask_with_head",
                            lambda rows=layout[1:-1].astype(np.int32), **_: [rows] * model.config.num_attention_heads)
    ids, types, mask = inputs(2, LENGTH, pad, seed=pad)
    want = hugging_face(model, ids, types, mask)
    for pipeline, made in compiled.items():
        got = ours(ort.InferenceSession(made.model.serialize()), ids, types, mask)
        assert error(got, want, mask) <= TOLERANCE, pipeline


@pytest.mark.parametrize("change, message", [
    ("layout: given", "layout: given needs a random_layout"),
    ("random_layout: [[1, 2]]", "random_layout goes with layout: given"),
    ("layout: given, random_layout: [[1, 2]]", "random_layout needs 16 rows"),
    ("layout: given, random_layout: " + str([[1, 2]] * 15 + [[1, 16]]), r"random_layout\[15\] must list"),
    ("layout: given, random_layout: " + str([[1]] * 16), r"random_layout\[0\] must list random_blocks = 2"),
])
def test_bad_layouts_are_located_errors(change, message):
    from tfcompiler.errors import SpecError

    text = f"""tfc: 1
name: x
topology: encoder
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 50, max_length: {LENGTH}}}
block: {{attention: {{kind: bigbird, block: {BLOCK}, random_blocks: {RANDOM}, {change}}}}}
encoder: {{layers: 1}}
"""
    with pytest.raises(SpecError, match=message):
        parse_spec(text, "x.yaml")


@pytest.mark.parametrize("talking_heads", ["none", "pre"])
@pytest.mark.parametrize("layout", ["layout: first_block", "layout: given, random_layout: " + str(
    drawn_layout(3)[:, :1].tolist())])
def test_counted_blocks_match_the_paper_reference(tmp_path, layout, talking_heads):
    """Each form of the compiled attention (gathered key blocks, the dense mask, and with talking heads
    the explicit scores with their pattern mask) against the NumPy reference, at max_length and
    shorter, padded (where the input's last block, global, moves)."""
    from safetensors.numpy import save_file

    from reference import Reference
    from test_components import feeds_for, random_weights, real_positions

    spec = parse_spec(f"""tfc: 1
name: x
topology: encoder
model: {{width: 32, heads: 4, ffn_width: 48, vocab_size: 50, max_length: {LENGTH}}}
block: {{attention: {{kind: bigbird, block: {BLOCK}, random_blocks: 1, trailing_global_blocks: 1,
                     talking_heads: {talking_heads}, {layout}}}}}
encoder: {{layers: 2}}
""", "x.yaml")
    weights = random_weights(spec)
    save_file(weights, str(tmp_path / "w.safetensors"))
    reference = Reference(spec, weights)
    for pipeline in PIPELINES:
        session = ort.InferenceSession(compile_spec(spec, weights=str(tmp_path / "w.safetensors"),
                                                    pipeline=pipeline).model.serialize())
        for length, pad in ((LENGTH, 5), (29, 3)):
            feeds = feeds_for(session, 2, length, pad, 50, seed=length)
            got = session.run(["last_hidden_state"], feeds)[0]
            want = reference(feeds)["last_hidden_state"]
            real = real_positions(feeds, "last_hidden_state", got.shape)
            assert np.abs(got[real] - want[real]).max() <= TOLERANCE * max(1.0, np.abs(want[real]).max()), pipeline
