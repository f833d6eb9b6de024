"""The spec language exported for people and editors: a JSON Schema (draft 2020-12) and the Markdown
reference in the README, both generated from the same dataclass declarations that parse specs, so
neither can drift from the parser."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import MISSING

from .kinds import ATTENTION, INPUTS, POSITIONS
from .model import Spec
from .schema import KindRegistry

REGISTRIES = (INPUTS, POSITIONS, ATTENTION)
_FLOAT_PATTERN = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
_SCALARS = {int: "integer", float: "number", bool: "boolean", str: "string"}


def _default(f: dataclasses.Field):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in _fields(type(value))}
    return value


def _doc(cls) -> str:
    """The class docstring, or "" where dataclass only generated its signature."""
    doc = (cls.__doc__ or "").strip()
    return "" if doc.startswith(cls.__name__ + "(") else doc


def _fields(cls) -> list[dataclasses.Field]:
    """The fields a user writes (the loader's own bookkeeping fields have no doc)."""
    return [f for f in dataclasses.fields(cls) if "doc" in f.metadata]


def _type_schema(hint, meta: dict, defs: dict) -> dict:
    if meta.get("registry") is not None:
        return {"$ref": f"#/$defs/{meta['registry'].name}"}
    if meta.get("partial_of") is not None:
        return {"$ref": f"#/$defs/{_section(meta['partial_of'], defs, partial=True)}"}
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a, meta, defs) for a in typing.get_args(hint) if a is not type(None)]
        if type(None) in typing.get_args(hint):
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is list:
        (item,) = typing.get_args(hint)
        return {"type": "array", "items": _type_schema(item, {}, defs)}
    if dataclasses.is_dataclass(hint):
        return {"$ref": f"#/$defs/{_section(hint, defs)}"}
    schema = {"type": _SCALARS[hint]}
    if meta.get("choices"):
        schema["enum"] = list(meta["choices"])
    if meta.get("minimum") is not None:
        schema["minimum"] = meta["minimum"]
    if hint is float:  # YAML 1.1 reads `1e-12` as a string; the loader takes it as the number it is
        return {"anyOf": [schema, {"type": "string", "pattern": _FLOAT_PATTERN}]}
    return schema


def _section(cls, defs: dict, partial: bool = False) -> str:
    """Add ``cls`` to ``defs`` (once) and return its name there."""
    name = cls.__name__ + ("Partial" if partial else "")
    if name in defs:
        return name
    defs[name] = {}  # reserve first: sections may refer to each other
    hints = typing.get_type_hints(cls)
    properties, required = {}, []
    for f in _fields(cls):
        prop = _type_schema(hints[f.name], f.metadata, defs)
        prop = {**prop, "description": f.metadata["doc"]}
        default = _default(f)
        if default is MISSING:
            required.append(f.name)
        elif f.metadata.get("registry") is None and f.metadata.get("partial_of") is None:
            prop["default"] = _jsonable(default)
        properties[f.name] = prop
    section = {"type": "object", "description": _doc(cls),
               "properties": properties, "additionalProperties": False}
    if required and not partial:
        section["required"] = required
    defs[name] = section
    return name


def _registry_schema(registry: KindRegistry, defs: dict) -> dict:
    """A kind union: a bare kind name, or a mapping whose `kind` selects the options' schema."""
    branches = []
    for kind, options in sorted(registry.kinds.items()):
        options_schema = defs[_section(options, defs)]
        named = {"properties": {"kind": {"const": kind}}, "required": ["kind"]}
        if kind == registry.default:  # an absent `kind` means the default kind
            named = {"anyOf": [named, {"not": {"required": ["kind"]}}]}
        branches.append({
            "if": named,
            "then": {"properties": {"kind": {"const": kind}, **options_schema["properties"]},
                     "additionalProperties": False}})
    kinds = sorted(registry.kinds)
    return {"description": f"{registry.doc} Default kind: {registry.default}.",
            "anyOf": [{"type": "string", "enum": kinds},
                      {"type": "object", "properties": {"kind": {"type": "string", "enum": kinds}},
                       "allOf": branches}]}


def json_schema() -> dict:
    from .. import builders  # noqa: F401  (registers the kinds)

    defs: dict = {}
    root = _section(Spec, defs)
    for registry in REGISTRIES:
        defs[registry.name] = _registry_schema(registry, defs)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://tfcompiler.dev/schema/spec-v1.json", "title": "tfcompiler spec, version 1",
            **{k: v for k, v in defs[root].items()}, "$defs": defs}


# --- Markdown ---------------------------------------------------------------------------------------
def _type_words(hint, meta) -> str:
    if meta.get("registry") is not None:
        return f"{meta['registry'].name} kind"
    if meta.get("partial_of") is not None:
        return f"{meta['partial_of'].__name__} (partial)"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        words = [_type_words(a, meta) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(words) + (" or null" if type(None) in typing.get_args(hint) else "")
    if origin is list:
        return f"list of {_type_words(typing.get_args(hint)[0], {})}"
    if dataclasses.is_dataclass(hint):
        return hint.__name__
    if meta.get("choices"):
        return " \\| ".join(f"`{c}`" for c in meta["choices"])
    words = _SCALARS[hint]
    return f"{words} ≥ {meta['minimum']:g}" if meta.get("minimum") is not None else words


def _table(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for f in _fields(cls):
        default = _default(f)
        if default is MISSING:
            shown = "required"
        elif f.metadata.get("registry") is not None:
            shown = "inherited" if f.metadata.get("inherits") else f"kind `{f.metadata['registry'].default}`"
        elif dataclasses.is_dataclass(default) or default in ([], None) and f.metadata.get("partial_of"):
            shown = "see section" if dataclasses.is_dataclass(default) else "—"
        else:
            shown = f"`{default if isinstance(default, str) else json.dumps(default)}`" \
                if default is not None else "—"
        doc = f.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | {_type_words(hints[f.name], f.metadata)} | {shown} | {doc} |")
    return rows


def _sections(cls, seen: list) -> list:
    """``cls`` and every section reachable from it, in reading order."""
    if cls in seen:
        return seen
    seen.append(cls)
    hints = typing.get_type_hints(cls)
    for f in _fields(cls):
        targets = [f.metadata.get("partial_of")] + [
            a for a in (typing.get_args(hints[f.name]) or (hints[f.name],))
            if dataclasses.is_dataclass(a)]
        for item in typing.get_args(hints[f.name]):
            targets += [a for a in typing.get_args(item) if dataclasses.is_dataclass(a)]
        for target in targets:
            if target is not None and dataclasses.is_dataclass(target):
                _sections(target, seen)
    return seen


def markdown_reference() -> str:
    from .. import builders  # noqa: F401  (registers the kinds)

    lines = []
    for cls in _sections(Spec, []):
        title = "Spec (the top level)" if cls is Spec else cls.__name__
        lines += [f"### {title}", "", _doc(cls), "", *_table(cls), ""]
    for registry in REGISTRIES:
        lines += [f"### `{registry.name}` kinds", "", f"{registry.doc} Default: `{registry.default}`. "
                  "Write the kind alone (`" + registry.name + ": NAME`) or as a mapping with `kind:` "
                  "and its options.", ""]
        for kind, options in sorted(registry.kinds.items()):
            lines += [f"#### `{kind}`", ""]
            if _doc(options):
                lines += [_doc(options), ""]
            lines += (_table(options) if _fields(options) else ["No options."]) + [""]
    return "\n".join(lines).rstrip() + "\n"


START, END = "<!-- spec-reference:start -->", "<!-- spec-reference:end -->"


def with_reference(readme: str) -> str:
    """``readme`` with the text between the spec-reference markers replaced by the reference."""
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{markdown_reference()}{END}{tail}"


if __name__ == "__main__":  # python -m tfcompiler.language.jsonschema README.md  (refresh the README)
    import sys
    from pathlib import Path

    path = Path(sys.argv[1])
    path.write_text(with_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
