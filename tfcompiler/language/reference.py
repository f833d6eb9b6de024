"""The spec language as Markdown, generated from the declarations that parse specs, so it cannot drift
from the parser: the field table of every section (docs/language.md) and, per kind registry, one
table row per kind — its paper, what it computes and how it is lowered, declared once on its options
class as ``PAPER``, ``COMPUTES`` and ``LOWERING`` — and each kind's options (docs/variants.md).
``tfc schema --markdown`` prints all of it; ``python -m tfcompiler.docs docs/`` writes it into docs/."""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import MISSING

from .jsonschema import REGISTRIES, SCALARS, default_of, section_doc, user_fields
from .kinds import HeadKind
from .model import Spec
from .schema import KindRegistry

ROW = ("PAPER", "COMPUTES", "LOWERING")


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
    words = SCALARS[hint]
    words = f"{words} ≥ {meta['minimum']:g}" if meta.get("minimum") is not None else words
    return f"{words}, ≤ `model.max_length`" if meta.get("positions") else words


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(cls) -> list[str]:
    hints = typing.get_type_hints(cls)
    rows = ["| field | type | default | description |", "| --- | --- | --- | --- |"]
    for f in user_fields(cls):
        default = default_of(f)
        if default is MISSING:
            shown = "required"
        elif f.metadata.get("registry") is not None:
            shown = "inherited" if f.metadata.get("inherits") else f"kind `{f.metadata['registry'].default}`"
        elif dataclasses.is_dataclass(default) or default in ([], None) and f.metadata.get("partial_of"):
            shown = "see section" if dataclasses.is_dataclass(default) else "—"
        else:
            shown = f"`{default if isinstance(default, str) else json.dumps(default)}`" \
                if default is not None else "—"
        rows.append(f"| `{f.name}` | {_type_words(hints[f.name], f.metadata)} | {shown} | {_cell(f.metadata['doc'])} |")
    return rows


def _sections(cls, seen: list) -> list:
    """``cls`` and every section reachable from it, in reading order."""
    if cls in seen:
        return seen
    seen.append(cls)
    hints = typing.get_type_hints(cls)
    for f in user_fields(cls):
        targets = [f.metadata.get("partial_of")] + [
            a for a in (typing.get_args(hints[f.name]) or (hints[f.name],))
            if dataclasses.is_dataclass(a)]
        for item in typing.get_args(hints[f.name]):
            targets += [a for a in typing.get_args(item) if dataclasses.is_dataclass(a)]
        for target in targets:
            if target is not None and dataclasses.is_dataclass(target):
                _sections(target, seen)
    return seen


def _registered() -> None:
    from .. import builders  # noqa: F401  (registers the kinds)


def sections_reference() -> str:
    """Every section of the language reachable from the top level, each with its field table (level-3
    headings, under the page's own)."""
    lines = []
    for cls in _sections(Spec, []):
        title = "Spec (the top level)" if cls is Spec else cls.__name__
        lines += [f"### {title}", "", section_doc(cls), "", *_table(cls), ""]
    return "\n".join(lines).rstrip() + "\n"


def kind_row(options: type) -> tuple[str, str, str]:
    """A kind's documentation row, declared on its options class itself: an options class that
    extends another kind's (BigBird's extends multi_head's) must not inherit that kind's row."""
    own = vars(options)
    missing = [name for name in ROW if not isinstance(own.get(name), str)]
    if missing:
        raise ValueError(f"{options.__name__} (kind {options.KIND!r}) declares no {', '.join(missing)}: "
                         "every kind documents its paper, what it computes and how it is lowered")
    return tuple(own[name] for name in ROW)


def generation_cell(options: type) -> str:
    """How a decoder with this kind generates (tfcompiler.builders.cache): step by step from what it
    carries, or by recomputing the whole sequence, and why."""
    if issubclass(options, HeadKind):
        return f"none: it {options.no_cache_because}" if options.no_cache_because else "step by step"
    if not getattr(options, "reads_tokens", True):  # an input kind (only they declare it) that is no token ids
        return "none: no token ids to feed back (a decoder still steps through its KV cache, a call at a time)"
    if options.no_cache_because:
        return f"recomputes the sequence at each step: {options.no_cache_because}"
    carried = getattr(options, "cached_as", "")
    return f"step by step, carrying {carried}" if carried else "step by step"


def variant_table(registry: KindRegistry) -> str:
    """One row per kind of ``registry``: paper, what it computes, ONNX lowering; the kind links to
    its options below the table."""
    _registered()
    rows = [f"| `{registry.name}` kind | paper | what it computes | ONNX lowering | generation |",
            "| --- | --- | --- | --- | --- |"]
    for kind, options in sorted(registry.kinds.items()):
        cells = " | ".join(_cell(text) for text in kind_row(options) + (generation_cell(options),))
        rows.append(f"| [`{kind}`](#{kind}) | {cells} |")
    return "\n".join(rows) + "\n"


def kind_options(registry: KindRegistry) -> str:
    """How a kind is written, then every kind of ``registry`` with its doc and option table."""
    _registered()
    lines = [f"{registry.doc} Default: `{registry.default}`. Write the kind alone (`{registry.name}: NAME`) "
             "or as a mapping with `kind:` and its options.", ""]
    for kind, options in sorted(registry.kinds.items()):
        lines += [f"### `{kind}`", ""]
        if section_doc(options):
            lines += [section_doc(options), ""]
        lines += (_table(options) if user_fields(options) else ["No options."]) + [""]
    return "\n".join(lines).rstrip() + "\n"


def markdown_reference() -> str:
    """The whole language, for ``tfc schema --markdown``: the sections, then each kind registry."""
    _registered()
    parts = [sections_reference()]
    for registry in REGISTRIES:
        parts += [f"## `{registry.name}` kinds\n", variant_table(registry), kind_options(registry)]
    return "\n".join(parts)
