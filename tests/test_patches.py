"""The `patches` input's rules and run-time checks: a located compile-time error for an image the patches do not
tile, a max_length shorter than the tokens, a topology other than an encoder and resized positions beside another
positional scheme; Model.run names an image of another size and a non-finite pixel."""
from __future__ import annotations

import numpy as np
import pytest

from test_errors import check_fails
from tfc_runtime import Model
from tfcompiler.compiler import compile_spec
from tfcompiler.language import parse_spec

SPEC = """
tfc: 1
name: vit
topology: encoder
model: {width: 16, heads: 2, ffn_width: 32, vocab_size: 1, max_length: 5}
input: {kind: patches, image_size: 16, patch_size: 8}
positional: learned
block: {placement: pre}
encoder: {layers: 1}
head: {kind: classifier, labels: 3, pooling: first, dense: false}
"""


@pytest.mark.parametrize("old, new, expected", [
    ("image_size: 16", "image_size: 20", ("spec.yaml:6:", "input.patch_size: patch_size 8 does not divide image_size "
                                          "20: the patches must tile the image (e.g. image_size 16 or 24)")),
    ("image_size: 16", "image_size: 4", ("e.g. image_size 8 or 16",)),
    ("max_length: 5", "max_length: 4", ("spec.yaml:5:", "model.max_length must be at least 5, the 2×2 patches and "
                                        "the tokens in front of a 16-pixel image; got 4")),
    ("patch_size: 8}", "patch_size: 8, distillation_token: true}", ("model.max_length must be at least 6",)),
    ("topology: encoder", "topology: decoder", ("input 'patches' reads an image into an encoder",)),
    ("patch_size: 8}", "patch_size: 8, position_grid: 3}", ("spec.yaml:6:", "input.position_grid: the input adds its "
                                                            "own resized positions: set positional: none")),
])
def test_bad_patches_get_a_located_error(tmp_path, capsys, old, new, expected):
    assert old in SPEC
    check_fails(tmp_path, capsys, SPEC.replace(old, new), *expected)


def test_run_names_bad_pixels(tmp_path):
    """Model.run refuses an image of another size (no interpolate_pos_encoding: the positions are the
    configured grid's) and non-finite pixels, naming pixel_values."""
    spec = parse_spec(SPEC, "vit.yaml")
    compile_spec(spec).model.save(str(tmp_path / "m.onnx"))
    model = Model(str(tmp_path / "m.onnx"))
    pixels = np.zeros((2, 3, 16, 16), np.float32)
    assert model.run({"pixel_values": pixels})["logits"].shape == (2, 3)
    with pytest.raises(ValueError, match=r"pixel_values: axis 2 must be 16"):
        model.run({"pixel_values": np.zeros((2, 3, 24, 16), np.float32)})
    pixels[1, 2, 3, 4] = np.nan
    with pytest.raises(ValueError, match=r"pixel_values\[1, 2, 3, 4\]: expected a finite number, got nan"):
        model.run({"pixel_values": pixels})

