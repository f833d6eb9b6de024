"""The spec language exported for editors: a JSON Schema (draft 2020-12) generated from the same
dataclass declarations that parse specs, so it cannot drift from the parser. The helpers that read
those declarations (a section's user fields, their defaults, its doc) serve the Markdown reference
too (reference.py)."""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import MISSING

from .kinds import ATTENTION, HEADS, INPUTS, POSITIONS
from .model import Spec
from .schema import KindRegistry

REGISTRIES = (INPUTS, POSITIONS, ATTENTION, HEADS)
_FLOAT_PATTERN = r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$"
SCALARS = {int: "integer", float: "number", bool: "boolean", str: "string"}


def default_of(f: dataclasses.Field):
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return {f.name: _jsonable(getattr(value, f.name)) for f in user_fields(type(value))}
    return value


def section_doc(cls) -> str:
    """The class docstring, or "" where dataclass only generated its signature."""
    doc = (cls.__doc__ or "").strip()
    return "" if doc.startswith(cls.__name__ + "(") else doc


def user_fields(cls) -> list[dataclasses.Field]:
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
    schema = {"type": SCALARS[hint]}
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
    for f in user_fields(cls):
        prop = _type_schema(hints[f.name], f.metadata, defs)
        prop = {**prop, "description": f.metadata["doc"]}
        default = default_of(f)
        if default is MISSING:
            required.append(f.name)
        elif f.metadata.get("registry") is None and f.metadata.get("partial_of") is None:
            prop["default"] = _jsonable(default)
        properties[f.name] = prop
    section = {"type": "object", "description": section_doc(cls),
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
                     "required": options_schema.get("required", []), "additionalProperties": False}})
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
