"""The spec language's exported forms: the JSON Schema accepts every shipped spec and mirrors the
declarations; the Markdown reference documents every field and kind (tests/test_docs.py checks that
docs/ holds the generated one)."""
from __future__ import annotations

import dataclasses
import json
import math
import typing
from pathlib import Path

import jsonschema
import pytest
import yaml

from tfcompiler.cli import main
from tfcompiler.language.jsonschema import REGISTRIES, json_schema
from tfcompiler.language.reference import markdown_reference
from tfcompiler.language.model import Spec

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.yaml"))


def test_schema_mirrors_the_spec_dataclass():
    schema = json_schema()
    fields = [f for f in dataclasses.fields(Spec) if "doc" in f.metadata]
    assert sorted(schema["properties"]) == sorted(f.name for f in fields)
    required = [f.name for f in fields if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    assert schema["required"] == required
    assert schema["properties"]["topology"]["enum"] == ["encoder", "decoder", "encoder-decoder", "hierarchical"]
    assert schema["additionalProperties"] is False
    for registry in REGISTRIES:
        union = schema["$defs"][registry.name]["anyOf"]
        assert union[0]["enum"] == sorted(registry.kinds)


def test_tfc_schema_prints_json(capsys):
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out)["title"].startswith("tfcompiler spec")


def test_reference_documents_every_field_and_kind():
    text = markdown_reference()
    sections = [Spec] + [t for f in dataclasses.fields(Spec) for t in typing.get_args(
        typing.get_type_hints(Spec)[f.name]) + (typing.get_type_hints(Spec)[f.name],)
        if dataclasses.is_dataclass(t)]
    for section in sections:
        for f in dataclasses.fields(section):
            if "doc" in f.metadata:
                assert f"| `{f.name}` |" in text, f"{section.__name__}.{f.name} undocumented"
    for registry in REGISTRIES:
        for kind in registry.kinds:
            assert f"### `{kind}`" in text


@pytest.fixture(scope="module")
def validator():
    """One validator for the module: generating the schema and checking it against the draft's
    metaschema (what `jsonschema.validate` does on every call) dominated each case's time."""
    schema = json_schema()
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_shipped_specs_validate(path, validator):
    validator.validate(yaml.safe_load(path.read_text()))


def test_schema_rejects_what_the_loader_rejects(validator):
    spec = yaml.safe_load(SPECS[0].read_text())
    spec["model"]["widht"] = 3
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(spec)


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_the_size_estimate_bounds_the_built_models_parameters(path):
    """The loader refuses a spec too big for this machine from a formula over the typed spec
    (tfcompiler.language.size); it must never count fewer parameters than the graph declares (else a model
    that cannot fit would slip through) and not so many more that one that fits would be refused."""
    from tfcompiler.builders import build_graph
    from tfcompiler.builders.weights import declared_params
    from tfcompiler.language import load_spec
    from tfcompiler.language.size import estimate

    spec = load_spec(path)
    built = sum(math.prod(shape) for shape, _ in declared_params(build_graph(spec)).values())
    runs = {name: [(1, block) for block in blocks] for name, _, blocks in spec.stacks()}
    estimated = estimate(spec, runs).parameters
    assert built <= estimated <= 2 * built, (built, estimated)


def test_a_deep_stack_is_parsed_once_per_run_of_layers():
    """Nothing before the size check grows with the layers: a billion layers with overrides are refused
    (or accepted) in the time of two."""
    import time

    from tfcompiler.errors import SpecError
    from tfcompiler.language import parse_spec

    text = (ROOT / "specs" / "gpt2-small.yaml").read_text()
    stack = yaml.safe_load(text)["decoder"]
    overrides = "".join(f"\n    - layers: [{i}, {10 * i}]\n      block: {{ffn: {{activation: relu}}}}"
                        for i in range(1, 20))
    deep = text.replace(f"layers: {stack['layers']}", "layers: 1000000000\n  overrides:" + overrides, 1)
    assert deep != text
    start = time.perf_counter()
    with pytest.raises(SpecError, match="decoder.layers: the weights would take about"):
        parse_spec(deep, "deep.yaml")
    assert time.perf_counter() - start < 1.0
