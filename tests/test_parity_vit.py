"""Parity with Hugging Face transformers' ViT: ViTModel (last_hidden_state and the pooler's pooler_output) and
ViTForImageClassification (logits from the final-normed class token), and DeiT's (a distillation token after the
class token) from small random configs, saved,
imported with `tfc import-hf` (the `patches` input), compiled and run on onnxruntime against the torch model
at fp32; and the configs the import refuses by name."""
from __future__ import annotations

import json

import numpy as np
import pytest

from tfcompiler.cli import main
from test_parity_hf import TOLERANCE, import_and_compile, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=48, hidden_act="gelu")
# a tiny spec of its own, for what Model.run checks
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


def vit(model_class: str, **options):
    config = (transformers.DeiTConfig if model_class.startswith("DeiT") else transformers.ViTConfig)
    return randomise(getattr(transformers, model_class)(config(**{**CONFIG, **options})), seed=5)


def assert_close(got, want, what: str):
    assert got.shape == want.shape, what
    error = float(np.abs(got - want).max())
    assert error <= TOLERANCE * max(1.0, float(np.abs(want).max())), f"{what}: {error}"


@pytest.mark.parametrize("model_class, outputs, options", [
    ("ViTModel", ("last_hidden_state", "pooler_output"), {}),
    ("ViTModel", ("last_hidden_state", "pooler_output"), dict(num_channels=1, patch_size=4, pooler_act="gelu")),
    ("ViTForImageClassification", ("logits",), dict(num_labels=5)),
    ("DeiTModel", ("last_hidden_state", "pooler_output"), {}),
    ("DeiTForImageClassification", ("logits",), dict(num_labels=4))])
def test_vit_matches_transformers(tmp_path, model_class, outputs, options):
    model = vit(model_class, **options)
    session = import_and_compile(model, tmp_path)
    assert [i.name for i in session.get_inputs()] == ["pixel_values"]
    assert sorted(o.name for o in session.get_outputs()) == sorted(outputs)
    channels = options.get("num_channels", 3)
    pixels = np.random.default_rng(2).standard_normal((2, channels, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(pixel_values=torch.from_numpy(pixels))
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixel_values": pixels})))
    for name in outputs:
        assert_close(got[name], want[name].numpy(), f"{model_class} {name}")


@pytest.mark.parametrize("options, refused", [
    (dict(qkv_bias=False), "qkv_bias=false"),
    (dict(image_size=30), "not a multiple of patch_size 8"),
    (dict(patch_size=[8, 4]), "not square"),
    (dict(pooler_output_size=16), "pooler_output_size 16")])
def test_vit_import_refuses_by_name(tmp_path, capsys, options, refused):
    vit("ViTModel", **options).save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert refused in capsys.readouterr().err
    assert not (tmp_path / "imported").exists()


def test_deit_with_teacher_is_refused(tmp_path, capsys):
    vit("DeiTForImageClassificationWithTeacher").save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert "DeiTForImageClassificationWithTeacher" in capsys.readouterr().err


def test_vit_masked_image_modeling_is_refused(tmp_path, capsys):
    """ViTForMaskedImageModeling's mask token replaces patches the caller marks: an input the compiled model lacks."""
    model = transformers.ViTForMaskedImageModeling(transformers.ViTConfig(**CONFIG))
    model.save_pretrained(tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["model_type"] == "vit"
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) != 0
    assert "mask token" in capsys.readouterr().err


def test_run_names_bad_pixels(tmp_path):
    """Model.run refuses an image of another size (no interpolate_pos_encoding: the positions are the
    configured grid's) and non-finite pixels, naming pixel_values."""
    from tfc_runtime import Model
    from tfcompiler.compiler import compile_spec
    from tfcompiler.language import parse_spec

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

