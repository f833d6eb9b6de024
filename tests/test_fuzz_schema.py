"""Keeps issue 20 closed for specs the JSON Schema allows: documents drawn from what `tfc schema` prints
(tests/schema_strategy.py) are all valid to an editor, so every one that `tfc check` refuses must be refused
with a located message, never an internal error, and whatever check accepts must compile.

- Whole documents, every section and kind the schema knows, with integers from the schema's minimum up to
  sizes past any machine (the schema bounds none from above): `tfc check` exits 0 or 1 with no traceback,
  within the deadline and the memory bound (tests/fuzzing.py).
- A tiny decoder, encoder or encoder-decoder with one or two of its sections drawn from the schema at small
  sizes (so that most reach the builders): `tfc compile` exits 0 or 1, leaves no file when it fails, and
  compiles every spec that `tfc check` accepts.
"""
from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_spec
from fuzzing import FUZZ, SCALE, assert_clean, files_in, run_cli
from schema_strategy import documents
from tfcompiler.cli import main


def printed_schema() -> dict:
    """The schema as `tfc schema` prints it: what an editor validates against."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema"]) == 0
    return json.loads(out.getvalue())


SCHEMA = printed_schema()
# sizes past any machine now and then: check must estimate and refuse them before allocating anything
HUGE = [2 ** 16, 2 ** 31, 10 ** 12, 2 ** 63, 10 ** 30]


def any_size(minimum: int | None) -> st.SearchStrategy[int]:
    low = -3 if minimum is None else minimum
    return st.integers(low, low + 6) | st.sampled_from([low + size for size in HUGE])


def toy_size(minimum: int | None) -> st.SearchStrategy[int]:
    """Counts at or just past the minimum, and multiples of four (the tiny models' heads divide them)."""
    low = 0 if minimum is None else minimum
    return st.integers(low, low + 3) | st.sampled_from([4, 8, 16])


def write(folder: str, document) -> Path:
    path = Path(folder) / "spec.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def test_the_strategy_draws_what_the_schema_allows():
    """Without this the fuzz below could pass on documents no editor would accept."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    drawn = []

    @settings(FUZZ, max_examples=100)
    @given(documents(SCHEMA, any_size))
    def draw(document):
        drawn.append(document)
    draw()
    assert len(drawn) == 100 and not [error for doc in drawn for error in validator.iter_errors(doc)]
    assert {doc["topology"] for doc in drawn} == set(SCHEMA["properties"]["topology"]["enum"])
    assert len({json.dumps(doc, sort_keys=True) for doc in drawn}) > 90  # not a handful of documents, repeated


@settings(FUZZ, max_examples=300 * SCALE)
@given(documents(SCHEMA, any_size))
def test_schema_documents_check_cleanly(document):
    with tempfile.TemporaryDirectory() as tmp:
        code, err = run_cli("check", str(write(tmp, document)))
        assert_clean(code, err)
        assert code in (0, 1), err  # a spec file is never a usage error


SECTIONS = [name for name in SCHEMA["properties"] if name not in ("tfc", "name", "topology", "model")]


@st.composite
def tiny_with_sections(draw) -> dict:
    """A tiny model with one or two top-level sections drawn from the schema at toy sizes."""
    document = yaml.safe_load(tiny_spec(draw(st.sampled_from(["decoder", "encoder", "encoder-decoder"]))))
    for name in draw(st.lists(st.sampled_from(SECTIONS), min_size=1, max_size=2, unique=True)):
        document[name] = draw(documents(SCHEMA["properties"][name] | {"$defs": SCHEMA["$defs"]}, toy_size))
    return document


@settings(FUZZ, max_examples=120 * SCALE)
@given(tiny_with_sections())
def test_schema_sections_compile_when_check_accepts_them(document):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = write(tmp, document), Path(tmp) / "out.onnx"
        checked, _ = run_cli("check", str(path))
        code, err = run_cli("compile", str(path), "-o", str(out), "-q")
        assert_clean(code, err)
        assert code in (0, 1), err
        assert files_in(Path(tmp)) == ["out.onnx"] * (code == 0) + ["spec.yaml"], err
        assert code == checked, f"check exited {checked}, compile {code}: {err[-2000:]}"


# --- what this fuzz found: the schema and the loader disagreed ------------------------------------------
def test_a_float_option_in_a_union_reads_exponent_text_as_the_number(tmp_path):
    """YAML 1.1 reads `1e-5` (no dot) as a string; `epsilon: 1e-5` was read as the number but
    `embedding: {scale: 1e-5}` (true, false or a number) was refused, though the schema allows it."""
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec() + "embedding: {scale: 1e-5}\n")  # tiny_spec has no `embedding`
    assert run_cli("check", str(path)) == (0, "")
    path.write_text(tiny_spec() + "embedding: {scale: 1e999}\n")
    code, err = run_cli("check", str(path))
    assert code == 1 and "embedding.scale: expected true or false or a finite number, got string '1e999'" in err


@pytest.mark.parametrize("line, without, given, message", [
    ("positional: learned", "positional: {kind: conditional}", "positional: {kind: conditional, grid_width: 4}",
     "positional.grid_width: missing required key 'grid_width'"),
    ("block: {placement: pre}", "block: {attention: {kind: sliding_window}}",
     "block: {attention: {kind: sliding_window, window: 4}}", "block.attention.window: missing required key 'window'")])
def test_the_schema_requires_the_options_the_loader_requires(tmp_path, line, without, given, message):
    """A kind's options without a default were optional in the schema: an editor passed what check refused."""
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(SCHEMA)
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec().replace(line, without))
    code, err = run_cli("check", str(path))
    assert code == 1 and message in err, err
    assert not validator.is_valid(yaml.safe_load(path.read_text()))
    path.write_text(tiny_spec().replace(line, given))
    assert run_cli("check", str(path)) == (0, "")
    assert validator.is_valid(yaml.safe_load(path.read_text()))


def test_an_encoder_with_too_few_t5_buckets_is_refused_by_check(tmp_path):
    """Found by this fuzz: an encoder halves T5's buckets per direction; with fewer than 2 in each the bucket
    table divided by zero in compile (a decoder's 2 buckets still compile)."""
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec("encoder", "{kind: t5, num_buckets: 3}"))
    code, err = run_cli("check", str(path))
    assert code == 1 and ("spec.yaml:5:37: positional.num_buckets: an encoder halves the buckets per direction and "
                          "needs 2 in each: expected at least 4, got 3") in err, err
    path.write_text(tiny_spec("decoder", "{kind: t5, num_buckets: 2}"))
    assert run_cli("compile", str(path), "-o", str(tmp_path / "out.onnx"), "-q")[0] == 0


@pytest.mark.parametrize("line, message", [
    ("init: {std: 1.0e300}", "init.std: expected a finite number >= 0, got 1.0e300 (past float32's range, 3.4e38)"),
    ("block: {norm: {epsilon: 1.0e39}}",
     "block.norm.epsilon: expected a finite number >= 0, got 1.0e39 (past float32's range, 3.4e38)")])
def test_a_float_past_float32s_range_is_refused(tmp_path, line, message):
    """Found by this fuzz (NumPy's overflow warnings in compile): finite in the YAML, such a float became inf
    in the model's weights or attributes."""
    path = tmp_path / "spec.yaml"
    path.write_text(tiny_spec().replace("block: {placement: pre}\n", "") + line + "\n")
    code, err = run_cli("check", str(path))
    assert code == 1 and message in err, err
