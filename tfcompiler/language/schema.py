"""The spec language's field machinery: typed sections declared as dataclasses, parsed from YAML
nodes with their locations, and exported as JSON Schema and as Markdown reference.

A section is a frozen dataclass whose fields are declared with :func:`option`; the field's type
annotation (int, float, bool, str, a nested section, ``list[Section]``, ``X | None``) and its
metadata (doc, choices, minimum) drive parsing, error messages, the JSON Schema and docs/.
A *kind union* (:class:`KindRegistry`) is a mapping with a ``kind`` key that selects which options
section parses the rest: attention kinds, positional schemes and input layers register there.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import MISSING, dataclass
from typing import Any

import yaml

from ..errors import Problem

REQUIRED = MISSING


def option(default=REQUIRED, doc: str = "", choices: tuple | None = None, minimum: float | None = None,
           registry: "KindRegistry | None" = None, partial_of: type | None = None, inherits: bool = False,
           shrink=None, positions: bool = False):
    """Declare a spec field: its default (omit for required), documentation and value rules.
    With ``registry`` the field is a kind union parsed by that registry (absent: the registry's
    default kind, or None with ``inherits``, for a setting taken from elsewhere); with
    ``partial_of`` it is a mapping of that section's keys kept as YAML for the loader to merge
    (block overrides); ``shrink`` is how the option shrinks to toy size, a rule from shrink_rules.py
    (absent: it stays as written); ``positions``: the field counts positions (a window, a block, a
    projected length), so it is at most ``model.max_length`` (rules.py checks it)."""
    meta = {"doc": doc, "choices": choices, "minimum": minimum, "registry": registry,
            "partial_of": partial_of, "inherits": inherits, "shrink": shrink, "positions": positions}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass
class KindRegistry:
    """Kinds selectable by a ``kind:`` key, each with its own options section, which derives from the
    registry's base in kinds.py and may define ``problems(spec, where)`` for rules that need the
    whole spec (rules.py; the loader reports them at the section's path)."""

    name: str
    doc: str
    default: str
    kinds: dict[str, type] = dataclasses.field(default_factory=dict)
    builders: dict[str, Any] = dataclasses.field(default_factory=dict)
    examples: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    def register(self, kind: str, options: type, builder=None, examples: dict[str, str] | None = None) -> None:
        """Add a kind: its options section (parsed from the spec), the function that builds it and
        its example specs, {name: YAML} — the sections a small model needs to use the kind: a
        `topology:` line, an optional one-line `model: {...}` of keys beyond the sizes, then its
        stacks, blocks and head; the component tests compile each one against the kind's NumPy
        reference (tests/test_components.py)."""
        if kind in self.kinds:
            raise ValueError(f"{self.name} kind {kind!r} registered twice")
        options.KIND = kind
        self.kinds[kind] = options
        self.builders[kind] = builder
        self.examples[kind] = dict(examples or {})

    def builder(self, options):
        return self.builders[kind_of(options)]


class Reader:
    """Parses YAML nodes into sections, collecting every problem with its location."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self._nodes: dict[int, yaml.Node] = {}  # id of a parsed list or section -> its YAML node

    def node_of(self, value) -> yaml.Node | None:
        """The YAML node a parsed list or section came from (for cross-field messages)."""
        return self._nodes.get(id(value))

    def problem(self, node: yaml.Node | None, path: str, message: str) -> None:
        line, col = (node.start_mark.line + 1, node.start_mark.column + 1) if node else (1, 1)
        self.problems.append(Problem(self.file, line, col, path, message))

    # --- sections -------------------------------------------------------------------------------
    def section(self, cls: type, node: yaml.Node | None, path: str, registry: KindRegistry | None = None):
        """Parse a mapping node into ``cls``; a missing node means all defaults. ``registry``: ``cls`` is
        one of its kinds, and a key another kind of it reads is named as that kind's option."""
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        given = self.mapping(node, path) if node is not None else {}
        values = {}
        for key, (key_node, value_node) in given.items():
            if key not in fields:
                self.problem(key_node, join(path, key), unknown_key(key, fields, cls, registry))
                continue
            before = len(self.problems)
            value = self.value(hints[key], fields[key], value_node, join(path, key))
            if value is None and len(self.problems) > before:
                # A field that failed to parse is left out, so that no section holds a None its type
                # does not allow: an optional field keeps its default, and a section missing a
                # required one is no section (None), as when the key is absent.
                continue
            values[key] = value
        for name, f in fields.items():
            if name in given:
                continue
            if f.metadata.get("registry") is not None and not f.metadata.get("inherits"):
                # an absent kind union takes its default kind
                values[name] = self.kind_union(f.metadata["registry"], None, join(path, name))
            elif f.default is MISSING and f.default_factory is MISSING:
                self.problem(node, join(path, name), f"missing required key '{name}'")
        try:
            return cls(**values)
        except TypeError:  # a required field failed to parse: the problem is already recorded
            return None

    def kind_union(self, registry: KindRegistry, node: yaml.Node | None, path: str):
        if node is None:
            return registry.kinds[registry.default]()
        if isinstance(node, yaml.ScalarNode):  # shorthand: `attention: multi_head`
            kind, rest = node.value, None
        else:
            entries = self.mapping(node, path)
            if not isinstance(node, yaml.MappingNode):  # a list: `mapping` said so; it has no options to read
                return None
            kind_entry = entries.pop("kind", None)
            if kind_entry and not isinstance(kind_entry[1], yaml.ScalarNode):  # its value would be a list of nodes
                self.problem(kind_entry[1], join(path, "kind"),
                             f"expected one of {sorted(registry.kinds)}, got {describe(kind_entry[1])}")
                return None
            kind = kind_entry[1].value if kind_entry else registry.default
            rest = yaml.MappingNode("tag:yaml.org,2002:map",
                                    [(k, v) for k, v in node.value if k.value != "kind"],
                                    start_mark=node.start_mark)
        if kind not in registry.kinds:
            self.problem(node if rest is None else kind_entry[1], join(path, "kind"),
                         f"expected one of {sorted(registry.kinds)}, got {kind!r}"
                         f"{did_you_mean(kind, registry.kinds)}")
            return None
        return self.section(registry.kinds[kind], rest, path, registry)

    def mapping(self, node: yaml.Node, path: str) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, f"expected a mapping, got {describe(node)}")
            return {}
        out = {}
        for key_node, value_node in node.value:
            if key_node.value in out:
                self.problem(key_node, join(path, key_node.value), "key given twice")
            out[key_node.value] = (key_node, value_node)
        return out

    # --- values ---------------------------------------------------------------------------------
    def value(self, hint, f: dataclasses.Field | None, node: yaml.Node, path: str):
        meta = f.metadata if f is not None else {}
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(hint) if a is not type(None)]
            if is_null(node) and type(None) in typing.get_args(hint):
                return None
            if len(options) == 1:
                return self.value(options[0], f, node, path)
            lists = [option for option in options if typing.get_origin(option) is list]
            if lists and isinstance(node, yaml.SequenceNode):  # `eos_token_id: int | list[int]` given a list
                return self.value(lists[0], f, node, path)
            return self.scalar_union(options, meta, node, path)
        if origin is list:
            (item,) = typing.get_args(hint)
            if not isinstance(node, yaml.SequenceNode):
                self.problem(node, path, f"expected a list, got {describe(node)}")
                return []
            items = [self.value(item, None, n, f"{path}[{i}]") for i, n in enumerate(node.value)]
            self._nodes[id(items)] = node
            return items
        if meta.get("partial_of") is not None:
            if not isinstance(node, yaml.MappingNode):
                self.problem(node, path, f"expected a mapping, got {describe(node)}")
                return None
            return node
        if isinstance(meta.get("registry"), KindRegistry):
            return self.kind_union(meta["registry"], node, path)
        if dataclasses.is_dataclass(hint):
            return self.section(hint, node, path)
        return self.scalar(hint, meta, node, path)

    def scalar(self, hint: type, meta, node: yaml.Node, path: str):
        if not isinstance(node, yaml.ScalarNode):
            self.problem(node, path, f"expected {type_words(hint, meta)}, got {describe(node)}")
            return None
        value = yaml.SafeLoader(b"").construct_object(node)
        if hint is float:
            value = number_text(value)
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not finite(value):
            past = " (past float32's range, 3.4e38)" if math.isfinite(value) else ""
            self.problem(node, path, f"expected {type_words(hint, meta)}, got {node.value}{past}")
            return None
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            self.problem(node, path, f"expected {type_words(hint, meta)}, got {describe(node)}")
            return None
        choices = meta.get("choices")
        if choices and value not in choices:
            self.problem(node, path, f"expected one of {list(choices)}, got {value!r}"
                         f"{did_you_mean(str(value), choices)}")
            return None
        minimum = meta.get("minimum")
        if minimum is not None and value < minimum:
            self.problem(node, path, f"expected {type_words(hint, meta)}, got {value!r}")
            return None
        return value

    def scalar_union(self, options, meta, node, path):
        """A field like ``scale: bool | float``: the first type the scalar satisfies wins."""
        value = yaml.SafeLoader(b"").construct_object(node) if isinstance(node, yaml.ScalarNode) else None
        for hint in options:
            if typing.get_origin(hint) is list:  # a list is a sequence node, never this scalar (see `value`)
                continue
            candidate = number_text(value) if hint is float else value
            if isinstance(candidate, hint) and not (hint in (int, float) and isinstance(candidate, bool)) \
                    and finite(candidate):
                return candidate
            if hint is float and isinstance(candidate, int) and not isinstance(candidate, bool):
                return float(candidate)
        words = " or ".join(type_words(h, meta) for h in options)
        self.problem(node, path, f"expected {words}, got {describe(node)}")
        return None


def kind_of(options) -> str:
    """The kind name an options section was registered under."""
    return options.KIND


# --- words ------------------------------------------------------------------------------------------
def unknown_key(key: str, fields, cls: type, registry: KindRegistry | None) -> str:
    """Why ``key`` is not read: an option of other kinds of the registry (named), else a typo (did you mean)."""
    owners = [kind for kind, other in (registry.kinds.items() if registry else ())
              if key in {f.name for f in dataclasses.fields(other)}]
    if not owners:
        return f"unknown key{did_you_mean(key, fields)}"
    named = " and ".join(owners) if len(owners) <= 3 else f"{', '.join(owners[:3])} and {len(owners) - 3} more"
    return f"'{key}' is an option of the {named} {registry.name}, not of '{cls.KIND}'"


def join(path: str, key) -> str:
    return f"{path}.{key}" if path else str(key)


# Models compute in float32 (or narrower): a larger option would be infinite there
FLOAT32_MAX = 3.4028234663852886e38


def finite(value) -> bool:
    """False for a float that is NaN or infinite (`.nan`, `.inf`, `1e999`), or past float32's range (`1e39`,
    infinite in the model): no option means one."""
    return not isinstance(value, float) or (math.isfinite(value) and abs(value) <= FLOAT32_MAX)


def number_text(value):
    """A float field's value: YAML 1.1 reads `1e-5` (no dot) as a string, which users mean as the number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    return value


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, [str(c) for c in candidates], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = yaml.SafeLoader(b"").construct_object(node)
    kind = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(type(value), "null")
    return f"{kind} {node.value!r}" if kind != "null" else "nothing (null)"


def type_words(hint, meta) -> str:
    minimum = meta.get("minimum") if meta else None
    if typing.get_origin(hint) is list:
        return "a list"
    base = {int: "an integer", float: "a finite number", bool: "true or false", str: "a string"}.get(hint, str(hint))
    if minimum is not None:
        base += f" >= {minimum:g}" if hint is float else f" >= {int(minimum)}"
    return base
