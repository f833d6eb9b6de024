"""Keeps issue 20 closed for the command line: random argument lists over every subcommand — its own flags
and other commands' flags, unknown and misspelt ones, flags without their value or given twice — with hostile
values: negative, zero, huge and non-numeric numbers, NaN, empty and non-ASCII text, bad JSON for
--input-ids, paths that do not exist, folders where a file is expected and files of the wrong kind (a spec
for a model, a model for a spec, text, random bytes, an empty file, an .npz of the wrong arrays).

Each runs `tfc` in this process (tests/fuzzing.py: under a memory bound, within the deadline) and must exit 0,
1 or 2 with no traceback, writing only under the example's own output folder and nothing at all when it fails.
The values exclude sizes between "small" and "past any machine" (a batch of 10**7 is a real request that takes
minutes and gigabytes) and large --repeat counts (run N times, as asked).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_spec
from fuzzing import FUZZ, SCALE, assert_clean, files_in, run_cli
from tfcompiler.cli import parser


def _subcommands(command: argparse.ArgumentParser | None = None, prefix: str = "") -> dict[str, list[argparse.Action]]:
    """Each subcommand's flags, read from tfc's own parser: a flag added there is fuzzed without a change here. A
    command with commands of its own (`export triton`) is named by both words."""
    found = {}
    for action in (command or parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                nested = _subcommands(sub, f"{prefix}{name} ")
                found |= nested or {f"{prefix}{name}": [a for a in sub._actions if a.option_strings
                                                        and not isinstance(a, argparse._HelpAction)]}
    return found


def _kind(action: argparse.Action) -> str:
    """What a flag's values are: none (a switch), a choice, a path, JSON, text or a number."""
    if action.nargs == 0:
        return "switch"
    if action.choices or action.dest == "dump_after":  # pass names, checked after parsing
        return "choice"
    if action.dest in ("output", "weights", "inputs"):
        return "path"
    return {"input_ids": "json", "prompt": "text"}.get(action.dest, "number" if action.type else "text")


ACTIONS = _subcommands()
FLAGS = {name: [flag for action in actions for flag in action.option_strings] for name, actions in ACTIONS.items()}
KINDS = {flag: _kind(action) for actions in ACTIONS.values() for action in actions for flag in action.option_strings}
SWITCHES = {flag for flag, kind in KINDS.items() if kind == "switch"}
ANY_FLAG = sorted({flag for flags in FLAGS.values() for flag in flags})
UNKNOWN = ["--sequense", "--weight", "-x", "--", "-", "--help", "--output=", "--seed=", "--dump-after=all", "-qq"]
NUMBERS = ["-1", "0", "1", "2", "3", "-0", str(2 ** 31), str(2 ** 63), "1" + "0" * 30, "1e3", "3.5", "nan", "inf",
           "-inf", "0x10", " 3", "\u0663", "", "abc", "é"]
CHOICES = ["cpu", "cuda", "tpu", "portable", "ort-cpu", "ort-cuda", "fp32", "fp16", "bf16", "int8", "int4", "none",
           "default", "all", "fold_constants", "fuse_attention", "fuze_attention"]
JSON = ["[[1, 2, 3]]", "[1, 2]", "[[]]", "[]", "[[1], [2, 3]]", "[[-1]]", "[[49]]", "[[50]]", "[[1e400]]",
        "[[2.5]]", "[[true]]", '[["a"]]', '{"a": 1}', "null", "[[1, 2", "", "[" * 2000, "[[" + "1, " * 40 + "1]]",
        f"[[{2 ** 70}]]"]
# counts that would run as long as asked (--repeat) take small values only
SMALL = {"--repeat": ["0", "1", "-1", "abc"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """What the arguments may name: a tiny decoder's spec, its model file and model folder, inputs for it,
    files of other kinds, a folder, and paths that do not exist."""
    from tfc_runtime import Model, random_inputs

    folder = tmp_path_factory.mktemp("world")
    spec = folder / "spec.yaml"
    spec.write_text(tiny_spec())
    for out in ("tiny.onnx", "model/"):
        assert run_cli("compile", str(spec), "-o", str(folder / out), "-q")[0] == 0
    np.savez(folder / "inputs.npz", **random_inputs(Model(str(folder / "tiny.onnx")), batch=1, sequence=4))
    np.savez(folder / "wrong.npz", x=np.zeros(3))
    (folder / "text.txt").write_text("hello\n")
    (folder / "random.bin").write_bytes(bytes(range(256)))
    (folder / "empty").write_bytes(b"")
    (folder / "folder").mkdir()
    (folder / "hf").mkdir()
    (folder / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": -1}))
    paths = {p.name: str(p) for p in folder.iterdir()}
    return paths | {"missing": str(folder / "missing.yaml"), "missing/": str(folder / "no" / "such" / "dir") + "/"}


def outputs(out: Path) -> list[str]:
    """Where -o may point: all inside the example's own folder (a file, a folder, one to create, one whose
    parent does not exist, a file's name with a trailing slash), and the empty path."""
    return [str(out / "x.onnx"), str(out) + "/", str(out / "new") + "/", str(out / "a" / "b" / "c.onnx"),
            str(out / "w.safetensors"), str(out / "x.onnx") + "/", str(out), ""]


def valid_argv(command: str, world: dict[str, str], out: Path) -> list[str]:
    """A command line that works, for the fuzz to change: most examples then get past argparse."""
    return {"compile": [world["spec.yaml"], "-o", str(out / "x.onnx"), "-q"], "check": [world["spec.yaml"]],
            "shrink": [world["spec.yaml"]], "schema": [], "inspect": [world["tiny.onnx"]],
            "init-weights": [world["spec.yaml"], "-o", str(out / "w.safetensors")],
            "import-hf": [world["hf"], "-o", str(out / "imported") + "/"],
            "run": [world["tiny.onnx"], "--repeat", "1"],
            "generate": [world["model"], "--input-ids", "[[1, 2]]", "--max-new-tokens", "2"],
            "export triton": [world["model"], "-o", str(out / "repo")]}[command]


@st.composite
def argv(draw, world: dict[str, str], out: Path) -> list[str]:
    """A working command line with one to four changes: its positional replaced, a flag added (mostly its own,
    with a value of the flag's kind or another; now and then another command's or an unknown one, or a value
    left out), an argument dropped."""
    command = draw(st.sampled_from(sorted(FLAGS)))
    args, paths = valid_argv(command, world, out), sorted(world.values())
    for _ in range(draw(st.integers(1, 4))):
        action = draw(st.sampled_from(["positional", "flag", "flag", "flag", "flag", "drop"]))
        if action == "positional" and args and not args[0].startswith("-"):
            args[0] = draw(st.sampled_from(paths) | st.sampled_from(NUMBERS))
        elif action == "drop" and args:
            del args[draw(st.integers(0, len(args) - 1))]
        elif FLAGS[command] and draw(st.integers(0, 5)):
            flag = draw(st.sampled_from(FLAGS[command]))
            switch = flag in SWITCHES
            args += [flag] if switch == bool(draw(st.integers(0, 7))) else [flag, draw(values(flag, paths, out))]
        else:
            args.append(draw(st.sampled_from(ANY_FLAG) | st.sampled_from(UNKNOWN)))
    return [*command.split(), *args]


def values(flag: str, paths: list[str], out: Path) -> st.SearchStrategy[str]:
    """A value of the flag's own kind mostly, of another kind now and then."""
    if flag in ("-o", "--output"):
        return st.sampled_from(outputs(out))
    if flag in SMALL:
        return st.sampled_from(SMALL[flag])
    own = {"number": st.sampled_from(NUMBERS), "choice": st.sampled_from(CHOICES), "path": st.sampled_from(paths),
           "json": st.sampled_from(JSON), "text": st.text(max_size=5), "switch": st.text(max_size=5)}[KINDS[flag]]
    return own | own | own | st.sampled_from(NUMBERS + CHOICES + paths)


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*")}


@contextlib.contextmanager
def working_folder(folder: Path):
    """Run with ``folder`` as the working folder, so that what a command writes to a relative (or empty) path
    lands in the example's folder, where it is seen."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


@settings(FUZZ, max_examples=250 * SCALE)
@given(data=st.data())
def test_any_command_line_exits_cleanly(world, data):
    shared = Path(world["spec.yaml"]).parent
    with tempfile.TemporaryDirectory() as tmp, working_folder(Path(tmp)):
        out = Path(tmp)
        args = data.draw(argv(world, out))
        before = snapshot(shared)
        code, err = run_cli(*args)
        assert_clean(code, err)
        if code != 0:
            assert files_in(out) == [], err
        assert snapshot(shared) == before, "wrote outside the example's folder"


GRID = [(command, flag) for command, flags in sorted(FLAGS.items()) for flag in flags if flag not in SWITCHES]
GRID += [(command, None) for command in sorted(FLAGS) if command != "schema"]  # None: the positional argument


def hostile(flag: str | None, world: dict[str, str], out: Path) -> list[str]:
    """Every value of the flag's kind the fuzz draws from (for the positional: every path, and numbers)."""
    paths = sorted(world.values())
    if flag is None:
        return paths + ["-1", "", "é"]
    if flag in ("-o", "--output"):
        return outputs(out)
    if flag in SMALL:
        return SMALL[flag]
    return {"number": NUMBERS, "choice": CHOICES, "path": paths, "json": JSON,
            "text": ["", "hello", "é" * 3]}[KINDS[flag]]


@pytest.mark.parametrize("command, flag", GRID, ids=[f"{c} {f or 'positional'}" for c, f in GRID])
def test_every_flag_takes_every_hostile_value_cleanly(world, tmp_path, command, flag):
    """The fuzz above combines changes but draws each (flag, value) pair rarely; this tries each once, on
    an otherwise working command line."""
    shared = Path(world["spec.yaml"]).parent
    for i, value in enumerate(hostile(flag, world, tmp_path / "out")):
        out = tmp_path / str(i)
        out.mkdir()
        args = valid_argv(command, world, out)
        if flag is None:
            args[0] = value
        else:
            args += [flag, value.replace(str(tmp_path / "out"), str(out))]
        before = snapshot(shared)
        with working_folder(out):
            code, err = run_cli(*command.split(), *args)
        assert code in (0, 1, 2) and "Traceback" not in err, f"tfc {command} {args}: exit {code}: {err[-2000:]}"
        if code != 0:
            assert files_in(out) == [], (args, err)
        assert snapshot(shared) == before, (args, "wrote outside the example's folder")


def _most_threads() -> int:
    from tfc_runtime.session import most_threads

    return most_threads()


# What this fuzz found (each an internal error, a crash, a hang or a write into the working folder before its
# fix), with the exit code and message each gets now. SPEC, MODEL, FOLDER, OUT: the world's spec, model file,
# model folder, and the test's own output folder.
FOUND = [
    (["compile", "SPEC", "-o", ""], 2, "argument -o/--output: expected a path, got ''"),  # wrote into the cwd
    (["init-weights", "SPEC", "-o", ""], 2, "argument -o/--output: expected a path, got ''"),
    (["compile", "SPEC", "-o", "OUT/x.onnx", "--seed", "-1"], 2, "argument --seed: expected an integer >= 0, got '-1'"),
    (["init-weights", "SPEC", "-o", "OUT/w", "--seed", "-1"], 2, "argument --seed: expected an integer >= 0, got '-1'"),
    (["inspect", "SPEC", "--sequence", "-5"], 2, "argument --sequence: expected an integer >= 1, got '-5'"),
    # a session starts every thread at once: 512 took 14 s on two cores, 100,000 crashed the process
    (["run", "MODEL", "--threads", "100000"], 2,
     f"argument --threads: expected an integer in 1..{_most_threads()} (4 per core here), got '100000'"),
    (["generate", "FOLDER", "--input-ids", "[[1]]", "--threads", "-1"], 2,
     f"argument --threads: expected an integer in 1..{_most_threads()} (4 per core here), got '-1'"),
    # the random inputs were allocated (16 GiB) before their length was checked
    (["run", "MODEL", "--sequence", str(2 ** 31)], 2,
     "input_ids: axis 1 (sequence_length) is 2147483648, over the model's max_length 32"),
    (["run", "MODEL", "--batch", str(2 ** 31)], 2,
     f"random inputs of --batch {2 ** 31} --sequence 16: not enough memory (Unable to allocate 256. GiB"),
    (["generate", "FOLDER", "--input-ids", "2"], 1,
     "--input-ids: expected e.g. '[[5, 6, 7], [8, 9]]' (a list of prompts), got '2'"),
    (["generate", "FOLDER", "--input-ids", "[" * 3000], 1, "--input-ids: nested too deep for JSON's reader"),
    (["generate", "FOLDER", "--input-ids", f"[[{2 ** 70}]]"], 1,
     f"input_ids[0]: token {2 ** 70} is outside the vocabulary [0, 50)"),
    (["generate", "FOLDER", "--input-ids", "[[1]]", "--eos-token-id", str(2 ** 63)], 1,
     f"eos_token_id: expected a token id (an integer in [0, 2**63)) or a list of them, got {2 ** 63}"),
]


@pytest.mark.parametrize("args, code, message", FOUND, ids=[" ".join(a)[:60] for a, _, _ in FOUND])
def test_what_the_fuzzer_found_is_a_clean_error(world, tmp_path, args, code, message):
    names = {"SPEC": world["spec.yaml"], "MODEL": world["tiny.onnx"], "FOLDER": world["model"],
             "OUT": str(tmp_path / "out")}
    args = [names.get(a, a.replace("OUT", names["OUT"])) for a in args]
    (tmp_path / "out").mkdir()
    with working_folder(tmp_path / "out"):
        got, err = run_cli(*args)
    assert (got, message in err, "Traceback" in err) == (code, True, False), err
    assert files_in(tmp_path / "out") == []


def test_activations_past_memory_are_a_clean_error(world, tmp_path):
    """Inputs that fit but whose activations do not: onnxruntime's arena fails, and `Model.run` says so as a
    MemoryError (tfc run: exit 2) instead of onnxruntime's own exception (an internal error)."""
    code, err = run_cli("run", world["tiny.onnx"], "--batch", str(10 ** 6), "--sequence", "1", "--repeat", "0",
                        headroom=1 << 28)
    assert code == 2 and "not enough memory (onnxruntime could not allocate memory for these inputs" in err, err
