"""Bad input gets one clear message (file:line:col, the field's path, expected vs found, a
did-you-mean for typos), exit code 1, no traceback and no partial output file."""
from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import save_file

from conftest import tiny_spec
from tfcompiler.cli import main


def run_cli(capsys, *args) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def write(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def check_fails(tmp_path, capsys, text: str, *expected: str):
    path = write(tmp_path, text)
    out = tmp_path / "out.onnx"
    code, err = run_cli(capsys, "compile", str(path), "-o", str(out), "-q")
    assert code == 1, err
    for fragment in expected:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # no temp files either
    return err


GOOD = tiny_spec("decoder")


def test_malformed_yaml_names_line_and_column(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("heads: 4,", "heads: [4,"), "spec.yaml:4:", "malformed YAML")


def test_wrong_type_names_path_expected_and_found(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("heads: 4", 'heads: "eight"'),
                "spec.yaml:4:", "model.heads: expected an integer >= 1, got string 'eight'")


def test_unknown_key_suggests_the_closest(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("width: 32", "widht: 32"),
                "model.widht: unknown key (did you mean 'width'?)", "model.width: missing required key")


def test_bad_choice_lists_the_choices(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("placement: pre", "placement: middle"),
                "spec.yaml:6:", "block.placement: expected one of ['pre', 'post', 'none', 'reversible'], got 'middle'")


def test_unknown_kind_suggests_the_closest(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("positional: learned", "positional: sinusodal"),
                "positional.kind", "(did you mean 'sinusoidal'?)")


def test_width_not_divisible_by_heads(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("width: 32", "width: 30"),
                "model.heads: width 30 is not divisible by 4 heads")


def test_heads_not_divisible_by_kv_heads(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("heads: 4", "heads: 4, kv_heads: 3"),
                "model.kv_heads: 4 heads are not divisible by 3 key/value heads")


def test_topology_and_stacks_must_agree(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("topology: decoder", "topology: encoder"),
                "topology 'encoder' needs an `encoder` section", "topology 'encoder' has no `decoder` section")


def test_errors_inside_an_override_point_at_the_override(tmp_path, capsys):
    text = GOOD.replace("decoder: {layers: 2}", "decoder:\n  layers: 2\n  overrides:\n"
                        "    - layers: [0, 4]\n      block: {ffn: {activation: swish}}")
    err = check_fails(tmp_path, capsys, text, "decoder.overrides[0].layers: expected [first, last]",
                      "decoder.overrides[0].block.ffn.activation: expected one of")
    assert "spec.yaml:10:15:" in err and "spec.yaml:11:" in err


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    err = check_fails(tmp_path, capsys, GOOD.replace("width: 32", "width: -1").replace("heads: 4", "heads: x"),
                      "model.width", "model.heads")
    assert err.count("spec.yaml:") == 2


def test_missing_spec_file(tmp_path, capsys):
    code, err = run_cli(capsys, "check", str(tmp_path / "nope.yaml"))
    assert code == 1 and "nope.yaml:1:1: cannot read the spec" in err


def test_weights_that_do_not_fit_are_listed_together(tmp_path, capsys):
    spec = write(tmp_path, GOOD)
    weights = tmp_path / "w.safetensors"
    assert main(["init-weights", str(spec), "-o", str(weights)]) == 0
    from safetensors.numpy import load_file

    tensors = load_file(str(weights))
    del tensors["decoder.layers.0.attention.query.weight"]
    tensors["decoder.layers.1.ffn.up.weight"] = np.zeros((3, 3), np.float32)
    tensors["surplus.weight"] = np.zeros(2, np.float32)
    save_file(tensors, str(weights))
    out = tmp_path / "out.onnx"
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(out), "--weights", str(weights), "-q")
    assert code == 1 and not out.exists()
    assert "missing (1):" in err and "decoder.layers.0.attention.query.weight" in err
    assert "unexpected (1):" in err and "surplus.weight" in err
    assert "wrong shape (1):" in err and "decoder.layers.1.ffn.up.weight: expected [32, 48], got [3, 3]" in err


def test_unreadable_weights_file(tmp_path, capsys):
    spec, weights = write(tmp_path, GOOD), write(tmp_path, "not safetensors", "w.safetensors")
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"), "--weights", str(weights))
    assert code == 1 and "cannot read safetensors weights" in err


# (an existing folder is a model folder to write into: tests/test_model_folder.py)
@pytest.mark.parametrize("target", ["missing-dir/out.onnx", "missing-dir/model/", "spec.yaml/"])
def test_unwritable_output_leaves_nothing_behind(tmp_path, capsys, target):
    spec = write(tmp_path, GOOD)
    code, err = run_cli(capsys, "compile", str(spec), "-o", f"{tmp_path}/{target}", "-q")  # (a Path drops the /)
    assert code == 1 and "cannot write" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_opset_out_of_range(tmp_path, capsys):
    spec = write(tmp_path, GOOD)
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"), "--opset", "12")
    assert code == 1 and "--opset 12: expected 17..24" in err


def test_kind_rules_that_need_the_whole_spec(tmp_path, capsys):
    text = GOOD.replace("width: 32, heads: 4", "width: 33, heads: 3").replace("positional: learned",
                                                                             "positional: sinusoidal")
    check_fails(tmp_path, capsys, text, "spec.yaml:5:", "positional: sinusoidal positions need an even width, got 33")


def test_rotary_dim_must_fit_the_head(tmp_path, capsys):
    check_fails(tmp_path, capsys, GOOD.replace("positional: learned", "positional: {kind: rope, rotary_dim: 9}"),
                "rotary_dim must be even and at most the head width 8, got 9")


def test_star_paper_update_needs_a_bare_block(tmp_path, capsys):
    text = tiny_spec("encoder").replace("block: {", "block: {attention: {kind: star, update: paper}, ")
    check_fails(tmp_path, capsys, text, "update: paper is the whole satellite update: use it with placement: none")


def test_reversible_blocks_need_a_whole_stack_and_an_untied_head(tmp_path, capsys):
    text = GOOD.replace("block: {placement: pre}", "block: {placement: reversible}").replace(
        "decoder: {layers: 2}",
        "decoder:\n  layers: 2\n  overrides:\n    - layers: [1, 1]\n      block: {placement: pre}")
    check_fails(tmp_path, capsys, text, "every layer of the stack must be reversible, got ['pre', 'reversible']")
    text = GOOD.replace("block: {placement: pre}", "block: {placement: reversible}")
    check_fails(tmp_path, capsys, text, "the LM head cannot be tied to the embedding (set head.tied: false)")


def test_every_kind_states_its_rules_through_its_registry_base():
    """The loader's walk calls problems(spec, where) on every section and reads what a kind declares
    (self_only, numbers_from_segment_start, refuses_low_precision) without probing: each kind derives
    from its registry's base, which gives the defaults."""
    from tfcompiler.language.kinds import ATTENTION, INPUTS, POSITIONS, AttentionKind, InputKind, PositionalKind

    for registry, base in ((ATTENTION, AttentionKind), (POSITIONS, PositionalKind), (INPUTS, InputKind)):
        assert registry.kinds and all(issubclass(options, base) for options in registry.kinds.values())


def test_a_layers_own_positional_scheme_is_checked_at_the_layer(tmp_path, capsys):
    text = GOOD.replace("decoder: {layers: 2}", "decoder:\n  layers: 2\n  overrides:\n    - layers: [1, 1]\n"
                        "      block: {positional: {kind: rope, rotary_dim: 9}}")
    check_fails(tmp_path, capsys, text, "spec.yaml:8:3: decoder.layers[1].block.positional: rotary_dim must be "
                "even and at most the head width 8, got 9")


def test_an_interleaved_document_stack_without_an_encoder_is_a_located_error(tmp_path, capsys):
    text = GOOD.replace("topology: decoder", "topology: hierarchical").replace(
        "decoder: {layers: 2}", "document: {layers: 2, interleaved: true}").replace("kind: lm", "kind: pooler")
    check_fails(tmp_path, capsys, text, "spec.yaml:3:11: encoder: topology 'hierarchical' needs an `encoder` section")
