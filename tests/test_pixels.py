"""The `pixels` input (the Image Transformer's raster-scanned intensities): its located compile-time errors, the named
run-time errors of Model.run, and generating a whole image an intensity at a time through the runtime's generation
loop and `tfc generate`, with the KV cache giving what recomputing the whole raster gives. The compiled numbers
against the NumPy reference are tests/test_components.py's (the kind's examples)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_errors import check_fails
from tfc_runtime import Generator, Model
from tfcompiler.cli import main
from tfcompiler.compiler import compile_spec
from tfcompiler.errors import SpecError
from tfcompiler.language import parse_spec

IMAGE = (4, 4, 3)  # 48 intensities, in a max_length of 64
SPEC = """
tfc: 1
name: pixels
topology: decoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 256, max_length: 64}
input: {kind: pixels, image: [4, 4, 3], coordinates: sinusoidal}
positional: none
embedding: {scale: true}
block: {placement: pre, attention: {kind: block_local_2d, row_length: 12, query_shape: [2, 6], memory_flange: [1, 3]}}
decoder: {layers: 2}
head: {kind: lm, tied: false, bias: true}
"""
LOCAL_1D = SPEC.replace("kind: block_local_2d, row_length: 12, query_shape: [2, 6], memory_flange: [1, 3]",
                        "kind: block_local, block: 8, memory_blocks: 1")
DENSE = SPEC.replace("attention: {kind: block_local_2d, row_length: 12, query_shape: [2, 6], memory_flange: [1, 3]}, ",
                     "")  # exact under left padding: its channels and coordinates come from position_ids
PIXELS_ENCODER = """
tfc: 1
name: pixel-encoder
topology: encoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 20}
input: {kind: pixels, image: [4, 4, 3], channels: embedding}
positional: learned
encoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: mean}
"""


@pytest.mark.parametrize("old, new, expected", [
    ("image: [4, 4, 3]", "image: [4, 3]", ("spec.yaml:6:", "input.image: expected [height, width, channels], three "
                                           "positive numbers, got [4, 3]")),
    ("max_length: 64", "max_length: 40", ("spec.yaml:5:", "input.image: model.max_length must be at least 48, the "
                                          "raster positions of a 4×4×3 image with channels as positions; got 40")),
    ("positional: none", "positional: sinusoidal", ("spec.yaml:6:", "input.coordinates: the input adds the sinusoidal "
                                                    "positions of the pixels' coordinates: set positional: none")),
    ("width: 16, heads: 2", "width: 6, heads: 2", ("spec.yaml:6:", "model.width must be at least 8 (got 6)")),
    ("vocab_size: 256", "vocab_size: 300", ("spec.yaml:5:", "model.vocab_size must be at most 256")),
    ("tied: false", "tied: true", ("spec.yaml:11:", "the input's tables are per channel", "set head.tied: false")),
    ("row_length: 12", "row_length: 16", ("spec.yaml:10:", "input.image: decoder layers 0, 1 attention "
                                          "'block_local_2d': row_length must be the 12 positions of an image row (4 "
                                          "pixels × 3 channels), got 16")),
    ("query_shape: [2, 6]", "query_shape: [3, 6]", ("query blocks of 3×6 do not tile the 4×12 raster of the image",)),
    ("query_shape: [2, 6]", "query_shape: [2, 5]", ("each row's positions of 5",)),
    ("coordinates: sinusoidal}", "coordinates: sinusoidal, channels: embedding}",
     ("input.channels: an LM head predicts one intensity per position",)),
])
def test_bad_pixel_specs_get_a_located_error(tmp_path, capsys, old, new, expected):
    assert old in SPEC
    check_fails(tmp_path, capsys, SPEC.replace(old, new), *expected)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Path per name: the decoders with their KV cache, and their uncached twins (`NAME-full`)."""
    folder, paths = tmp_path_factory.mktemp("pixels"), {}
    for name, text in {"local-2d": SPEC, "local-1d": LOCAL_1D, "dense": DENSE}.items():
        for cache in (True, False):
            path = paths[name + ("" if cache else "-full")] = folder / f"{name}-{cache}.onnx"
            compile_spec(parse_spec(text), seed=1, cache=cache).model.save(str(path))
    path = paths["encoder"] = folder / "encoder.onnx"
    compile_spec(parse_spec(PIXELS_ENCODER)).model.save(str(path))
    return paths


@pytest.mark.parametrize("name", ["local-2d", "local-1d", "dense"])
def test_generation_draws_a_whole_image_the_cache_as_the_full_raster(models, name):
    """From one intensity to the whole 4×4×3 image: the cached steps pick what recomputing the raster each step
    picks, with the same logits; the image is a [B, H, W, C] array of intensities."""
    cached, full = Generator(models[name]), Generator(models[name + "-full"])
    assert cached.cached and not full.cached
    options = dict(max_new_tokens=int(np.prod(IMAGE)) - 1, output_logits=True, return_dict_in_generate=True)
    fast, slow = (generator.generate([[17], [200]], **options) for generator in (cached, full))
    np.testing.assert_array_equal(fast.sequences, slow.sequences)
    np.testing.assert_allclose(np.stack(fast.logits), np.stack(slow.logits), rtol=1e-4, atol=1e-4)
    image = fast.sequences.reshape(2, *IMAGE)
    assert image.min() >= 0 and image.max() <= 255 and len(np.unique(image)) > 3


def test_greedy_picks_the_argmax_of_the_full_forward(models):
    """Each step's pick is the last position's argmax over the 256 intensities of the whole raster so far."""
    model = Model(models["local-2d-full"])
    got = Generator(models["local-2d"]).generate([[5, 99, 250]], max_new_tokens=10)[0]
    ids = np.array([[5, 99, 250]])
    for _ in range(10):
        logits = model.run(input_ids=ids, attention_mask=np.ones_like(ids))["logits"]
        ids = np.concatenate([ids, logits[:, -1:].argmax(-1)], axis=1)
    np.testing.assert_array_equal(got, ids[0])


def test_a_left_padded_row_reads_its_channels_from_its_first_intensity(models):
    """Channels and coordinates follow position_ids, not the column: a row left-padded beside a longer prompt
    generates what it generates alone."""
    generator = Generator(models["dense"])
    prompts = [[3, 4, 5, 6, 7], [8, 9]]
    batch = generator.generate(prompts, max_new_tokens=9)
    for row, prompt in zip(batch, prompts):
        np.testing.assert_array_equal(row[5 - len(prompt):], generator.generate([prompt], max_new_tokens=9)[0])


def test_tfc_generate_prints_an_image(models, capsys):
    assert main(["generate", str(models["local-1d"]), "--input-ids", "[[128]]", "--max-new-tokens", "47",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["sequences"]
    assert rows == Generator(models["local-1d"]).generate([[128]], max_new_tokens=47).tolist()
    assert len(rows[0]) == 48


@pytest.mark.parametrize("feeds, message", [
    ({"input_ids": [[0, 256, 3]]}, r"input_ids\[0, 1\]: expected an intensity in \[0, 256\), got 256"),
    ({"input_ids": [[-1, 2, 3]]}, r"input_ids\[0, 0\]: expected an intensity in \[0, 256\), got -1"),
])
def test_run_names_intensities_out_of_range(models, feeds, message):
    model = Model(models["local-2d-full"])
    ids = np.asarray(feeds["input_ids"])
    with pytest.raises(ValueError, match=message):
        model.run(input_ids=ids, attention_mask=np.ones_like(ids))


def test_run_names_a_raster_longer_than_the_image(models):
    """The model's max_length covers the image; a longer sequence or a position past it is named."""
    model = Model(models["local-2d-full"])
    ids = np.zeros((1, 49), np.int64)
    with pytest.raises(ValueError, match=r"input_ids: axis 1 \(sequence_length\) is 49"):
        model.run(input_ids=ids, attention_mask=np.ones_like(ids))
    cached = Model(models["local-1d"])
    empty = {p.name: np.zeros((1, 2, 0, 8), np.float32) for p in cached.inputs if p.name.startswith("past_")}
    with pytest.raises(ValueError, match=r"position_ids\[0, 0\]: expected a raster position of the 4×4×3 image's 48 "
                                         r"intensities, in \[0, 48\), got 48"):
        cached.run(input_ids=[[1]], attention_mask=[[1]], position_ids=[[48]], **empty)


def test_run_names_a_pixel_of_other_channels_and_an_image_too_long(models):
    """With channels as one embedding a position is a pixel: (B, H·W, C), the channels the image's."""
    model = Model(models["encoder"])
    pixels = np.random.default_rng(0).integers(0, 256, (2, 16, 3))
    assert model.run(input_ids=pixels, attention_mask=np.ones((2, 16), np.int64))["logits"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"input_ids: axis 2 must be 3"):
        model.run(input_ids=pixels[:, :, :2], attention_mask=np.ones((2, 16), np.int64))
    with pytest.raises(ValueError, match=r"input_ids: axis 1 \(sequence_length\) is 17, more than the 4×4×3 image's "
                                         r"16 pixels"):
        model.run(input_ids=np.zeros((1, 17, 3), np.int64), attention_mask=np.ones((1, 17), np.int64))


def test_an_encoder_decoder_draws_an_image_from_text(tmp_path):
    """The decoder's own input (`decoder: {input: {kind: pixels}}`): a folder of an encoder on tokens and a decoder
    on intensities generates an image from a prompt of token ids, the cached steps as the full recomputation."""
    text = """
tfc: 1
name: text-to-pixels
topology: encoder-decoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 256, max_length: 48}
positional: sinusoidal
encoder: {layers: 1}
decoder: {layers: 1, input: {kind: pixels, image: [4, 4, 3]}}
head: {kind: lm, tied: false}
generation: {decoder_start_token_id: 0}
"""
    (tmp_path / "spec.yaml").write_text(text)
    assert main(["compile", str(tmp_path / "spec.yaml"), "-o", str(tmp_path / "model") + "/", "-q"]) == 0
    generator = Generator(tmp_path / "model")
    fast = generator.generate([[5, 6, 7], [9]], max_new_tokens=47)
    np.testing.assert_array_equal(fast, generator.generate([[5, 6, 7], [9]], max_new_tokens=47, use_cache=False))
    assert fast.shape == (2, 48) and (fast[:, 0] == 0).all() and fast.max() <= 255
    with pytest.raises(SpecError, match="set head.tied: false"):
        parse_spec(text.replace("tied: false", "tied: true"))
