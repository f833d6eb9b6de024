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
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"), "--weights", str(tmp_path))
    assert code == 1 and f"{tmp_path}: a folder, not a safetensors file" in err


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


# --- hostile specs: every one a located error, in well under a second, whatever it asks for -----------------
def fails_in_every_command(tmp_path, capsys, path, *expected: str) -> None:
    """check, compile and inspect all refuse ``path`` with the same located message."""
    out = tmp_path / "out.onnx"
    for args in (["check", str(path)], ["compile", str(path), "-o", str(out), "-q"], ["inspect", str(path)]):
        code, err = run_cli(capsys, *args)
        assert code == 1, (args, err)
        for fragment in expected:
            assert fragment in err, f"{args[0]}: {fragment!r} not in {err!r}"
        assert err.count("spec.yaml:") == 1, err  # one message, no follow-on ones
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


@pytest.mark.parametrize("field, value, expected", [
    ("decoder: {layers: 2}", "decoder: {layers: -1}",
     "spec.yaml:7:19: decoder.layers: expected an integer >= 0, got -1"),
    ("heads: 4", "heads: 0", "spec.yaml:4:27: model.heads: expected an integer >= 1, got 0"),
    ("heads: 4", "heads: 4, kv_heads: -2", "model.kv_heads: expected an integer >= 1, got -2"),
    ("decoder: {layers: 2}", "decoder: {layers: 2, memory: -1}", "decoder.memory: expected an integer >= 0, got -1")])
def test_a_negative_count_is_a_located_error(tmp_path, capsys, field, value, expected):
    """A field that fails its minimum is left out of its section (not kept as None), so nothing after the
    check reads it: `layers: -1` was an internal error when the loader expanded range(None) layers."""
    fails_in_every_command(tmp_path, capsys, write(tmp_path, GOOD.replace(field, value)), expected)


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf", "1e999"])
def test_a_float_option_must_be_finite(tmp_path, capsys, value):
    text = GOOD.replace("block: {placement: pre}", f"block: {{placement: pre, norm: {{epsilon: {value}}}}}")
    fails_in_every_command(tmp_path, capsys, write(tmp_path, text),
                           "spec.yaml:6:", f"block.norm.epsilon: expected a finite number >= 0, got {value}\n")


def test_a_float_or_bool_option_must_be_finite(tmp_path, capsys):
    text = GOOD.replace("head: {kind: lm}", "embedding: {scale: .nan}\nhead: {kind: lm}")
    fails_in_every_command(tmp_path, capsys, write(tmp_path, text), "embedding.scale: expected true or false or a "
                           "finite number, got number '.nan'")


@pytest.mark.parametrize("replace, value, where, driver", [
    ("vocab_size: 50", "vocab_size: 1000000000000", "spec.yaml:4:", "model.vocab_size"),
    ("decoder: {layers: 2}", "decoder: {layers: 1000000000}", "spec.yaml:7:", "decoder.layers"),
    ("width: 32", "width: 1048576", "spec.yaml:4:", "model.width"),
    ("max_length: 32", "max_length: 1000000000000", "spec.yaml:4:", "model.max_length")])
def test_a_model_too_big_for_this_machine_is_refused_at_once(tmp_path, capsys, replace, value, where, driver):
    """The size comes from the typed spec alone, before a layer is expanded or a weight allocated: a billion
    layers are refused as fast as two (they used to run for minutes, or die of a MemoryError)."""
    import time

    from tfcompiler.language.size import GIB, physical_memory

    start = time.perf_counter()
    fails_in_every_command(tmp_path, capsys, write(tmp_path, GOOD.replace(replace, value)), f"{where}",
                           f"{driver}: the weights would take about ", " GiB in fp32",
                           f"more than this machine's {physical_memory() / GIB:,.1f} GiB of memory")
    assert time.perf_counter() - start < 3 * 3  # three commands (a few ms each here, but the machine is shared)


def test_the_size_check_uses_the_machines_memory(tmp_path, capsys, monkeypatch):
    """The same spec passes with memory to spare and is refused without: the check is weights vs memory."""
    from tfcompiler.language import size

    path = write(tmp_path, GOOD)
    assert run_cli(capsys, "check", str(path))[0] == 0
    monkeypatch.setattr(size, "physical_memory", lambda: 100_000)  # 25,000 parameters; the tiny spec has 26,272
    code, err = run_cli(capsys, "check", str(path))
    assert code == 1 and "decoder.layers: the weights would take about" in err and "0.0 GiB of memory" in err


@pytest.mark.parametrize("data, expected", [
    ("name: caf\xe9\n".encode("latin-1"), "spec.yaml:1:10: the spec is not UTF-8 text: byte 0xe9"),
    (bytes(range(256)), "spec.yaml:2:118: the spec is not UTF-8 text: byte 0x80"),
    (b"tfc: 1\nname: \x00\n", "spec.yaml:2:7: character U+0000 is not allowed in YAML"),
    (b"[" * 10000 + b"]" * 10000, "spec.yaml:1:65: the YAML nests deeper than 64 levels"),
    (b"a: " + b"{b: " * 10000 + b"1" + b"}" * 10000, "spec.yaml:1:256: the YAML nests deeper than 64 levels"),
    (b"- tfc: 1\n- name: x\n", "spec.yaml:1:1: expected a mapping of sections (tfc:, name:, topology:, model:, ...), "
                               "got a list"),
    (b"just words", "spec.yaml:1:1: expected a mapping of sections"),
])
def test_a_file_that_is_no_spec_is_one_located_error(tmp_path, capsys, data, expected):
    path = tmp_path / "spec.yaml"
    path.write_bytes(data)
    fails_in_every_command(tmp_path, capsys, path, expected)


def test_weights_that_are_not_finite_are_named(tmp_path, capsys):
    spec = write(tmp_path, GOOD)
    weights = tmp_path / "w.safetensors"
    assert main(["init-weights", str(spec), "-o", str(weights)]) == 0
    from safetensors.numpy import load_file

    tensors = load_file(str(weights))
    tensors["decoder.layers.0.attention.query.weight"][0, :3] = np.nan
    tensors["decoder.final_norm.weight"][1] = -np.inf
    save_file(tensors, str(weights))
    out = tmp_path / "out.onnx"
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(out), "--weights", str(weights), "-q")
    assert code == 1 and not out.exists()
    assert "not finite (2):" in err
    assert "decoder.layers.0.attention.query.weight: 3 NaN of 1,024 values" in err
    assert "decoder.final_norm.weight: 1 -inf of 32 values" in err


def test_a_table_past_memory_is_refused_naming_its_weight(tmp_path, capsys):
    """The loader's estimate counts the main tables (a billion token types: at check time); the built
    graph's declared weights are exact, so a kind's own table (Linformer's projection of a billion rows)
    is refused before it is drawn."""
    spec = write(tmp_path, GOOD.replace("block: {placement: pre}",
                                        "input: {kind: tokens, token_types: 1000000000}\nblock: {placement: pre}"))
    code, err = run_cli(capsys, "check", str(spec))
    assert code == 1 and "model.vocab_size: the weights would take about 32,000,0" in err, err
    spec = write(tmp_path, tiny_spec("encoder", head="pooler").replace(
        "block: {placement: pre}",
        "block: {placement: pre, attention: {kind: linformer, projected_length: 1000000000}}"))
    out = tmp_path / "out.onnx"
    for command in (["compile", str(spec), "-o", str(out), "-q"], ["init-weights", str(spec), "-o", str(out)]):
        code, err = run_cli(capsys, *command)
        assert code == 1 and not out.exists(), err
        assert "encoder.layers.0.attention.key_projection: the weights would take 476.8 GiB in fp32" in err, err
        assert "[1000000000, 32] (119.2 GiB)" in err, err


def test_a_count_of_positions_past_max_length_is_located(tmp_path, capsys):
    spec = write(tmp_path, GOOD.replace("block: {placement: pre}",
                                        "block: {placement: pre, attention: {kind: sliding_window, window: 1000000}}"))
    code, err = run_cli(capsys, "check", str(spec))
    assert code == 1
    assert (f"{spec}:7:10: decoder.layers[0].block.attention.window: counts positions: expected at most "
            "model.max_length (32), got 1,000,000") in err, err


def test_a_graph_past_the_node_limit_stops_at_the_entry_being_built(tmp_path, capsys, monkeypatch):
    import tfcompiler.limits as limits

    monkeypatch.setattr(limits, "NODE_LIMIT", 60)  # a tiny decoder passes it in its first layer
    spec = write(tmp_path, GOOD)
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"))
    assert code == 1 and "error: decoder.layers." in err and "the graph passes 60 nodes" in err, err
    assert not (tmp_path / "o.onnx").exists()
    monkeypatch.setattr(limits, "NODE_LIMIT", 10 ** 6)
    monkeypatch.setattr(limits, "ONNX_NODE_LIMIT", 20)  # the lowering of a two-layer decoder passes it
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"))
    assert code == 1 and "error: decoder." in err and "the ONNX graph passes 20 nodes" in err, err
    assert not (tmp_path / "o.onnx").exists()


def test_memory_running_out_while_building_names_the_entry(tmp_path, capsys, monkeypatch):
    from tfcompiler.builders.attention import performer

    def out_of_memory(*args):
        raise MemoryError

    monkeypatch.setattr(performer, "orthogonal_features", out_of_memory)
    spec = write(tmp_path, tiny_spec("encoder", head="pooler").replace(
        "block: {placement: pre}", "block: {placement: pre, attention: {kind: performer}}"))
    code, err = run_cli(capsys, "compile", str(spec), "-o", str(tmp_path / "o.onnx"))
    assert code == 1 and "encoder.layers.0.attention: out of memory while building it" in err, err


def test_a_checkpoint_shard_of_8_bit_floats_is_one_clear_error(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file as save_torch

    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    save_torch({"wte.weight": torch.zeros(4, 2).to(torch.float8_e4m3fn)}, str(tmp_path / "model.safetensors"))
    code, err = run_cli(capsys, "import-hf", str(tmp_path), "-o", str(tmp_path / "out"))
    assert code == 1 and "model.safetensors: 8-bit float tensors are not read" in err and "wte.weight: F8_E4M3" in err
    assert not (tmp_path / "out").exists()


def test_an_init_std_whose_draws_overflow_float32_is_located(tmp_path, capsys):
    spec = write(tmp_path, GOOD + "init: {std: 1.0e38}\n")
    code, err = run_cli(capsys, "check", str(spec))
    assert code == 1 and "init.std: normal draws of std 1e+38 overflow float32: expected at most 4.25e+37" in err
