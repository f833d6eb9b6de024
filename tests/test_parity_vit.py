"""Parity with Hugging Face transformers' ViT: ViTModel (last_hidden_state and the pooler's pooler_output) and
ViTForImageClassification (logits from the final-normed class token), and DeiT's (a distillation token after the
class token) from small random configs, saved,
imported with `tfc import-hf` (the `patches` input), compiled and run on onnxruntime against the torch model
at fp32; and the configs the import refuses by name."""
from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest

from tfcompiler.cli import main
from test_parity_hf import TOLERANCE, import_and_compile, randomise

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

CONFIG = dict(image_size=32, patch_size=8, num_channels=3, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=48, hidden_act="gelu")


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


def test_vit_without_pooler_is_last_hidden_state(tmp_path):
    """ViTModel(add_pooling_layer=False): head none, the final-normed hidden states alone."""
    model = randomise(transformers.ViTModel(transformers.ViTConfig(**CONFIG), add_pooling_layer=False), seed=6)
    session = import_and_compile(model, tmp_path)
    assert [o.name for o in session.get_outputs()] == ["last_hidden_state"]
    pixels = np.random.default_rng(4).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    assert_close(session.run(None, {"pixel_values": pixels})[0], want, "ViTModel without pooler")


@pytest.mark.parametrize("model_class, image_size", [("ViTModel", 48), ("ViTModel", 24),
                                                     ("DeiTForImageClassification", 56)])
def test_interpolated_positions_match_interpolate_pos_encoding(tmp_path, model_class, image_size):
    """The import at 32 pixels (a 4×4 grid), compiled for another image size with `position_grid: 4` and the
    same weights, against Hugging Face's forward with interpolate_pos_encoding=True (bicubic, torch's)."""
    import yaml
    from tfcompiler.compiler import compile_spec

    model = vit(model_class, num_labels=3)
    model.save_pretrained(tmp_path / "hf")
    assert main(["import-hf", str(tmp_path / "hf"), "-o", str(tmp_path / "imported")]) == 0
    spec = yaml.safe_load((tmp_path / "imported" / "spec.yaml").read_text())
    spec["input"].update(image_size=image_size, position_grid=4)
    spec["positional"] = "none"
    spec["model"]["max_length"] = (image_size // 8) ** 2 + 2
    (tmp_path / "resized.yaml").write_text(yaml.safe_dump(spec))
    compiled = compile_spec(tmp_path / "resized.yaml", weights=str(tmp_path / "imported" / "weights.safetensors"))
    session = ort.InferenceSession(compiled.model.serialize())
    pixels = np.random.default_rng(3).standard_normal((2, 3, image_size, image_size)).astype(np.float32)
    with torch.no_grad():
        want = model(pixel_values=torch.from_numpy(pixels), interpolate_pos_encoding=True)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"pixel_values": pixels})))
    for name in got:
        assert_close(got[name], want[name].numpy(), f"{model_class} at {image_size} {name}")


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

