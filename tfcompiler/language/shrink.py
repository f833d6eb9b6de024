"""Shrink a spec: the same architecture at toy size, for checks that evaluate every op in NumPy.

`tfc compile --verify` evaluates the IR before and after every pass; on a full-size model (BERT-base,
110M parameters) that takes minutes. The shrunk copy keeps everything that decides the graph's
structure and the passes' decisions, and makes every size small:

- every kind, norm, activation, placement, head, input and topology stays as written, and every option
  that declares no shrink rule;
- heads: at most 4 (a divisor of the original, so per-head lists thin out evenly); grouped-query and
  multi-query models keep their query heads per key-value head, over at most 2 key-value heads; head
  width 8 (16 with one head), the width heads x head width; ffn_width keeps its ratio to the width;
  the vocabulary at most 64 tokens;
- max_length stays on its side of LONG_FROM (the length from which the compiler lowers for long inputs
  and packs projections only inside token chunks): 64 below, LONG_FROM from there;
- layers: each run of layers that share one block (between overrides, poolings and upsamplings)
  keeps two (so a layer still follows one like it: residual scores, shared tables and masks, what
  common-subexpression elimination merges); overrides, shorten_at and upsample_at are renumbered;
- every other option shrinks by the rule its field declares (``option(shrink=...)``, rules from
  shrink_rules.py), wherever the option is written: options that scale with positions (windows, blocks,
  chunks, strides, landmarks, buckets, distances, spans, memories, memory slots) are capped small, so
  short check inputs still cross them; the 2-D grid options are divided by one power of two that keeps
  their ratios, so pooled grids still match the rows of the layers after them; options that scale with
  the heads, the head width or the width follow them. This module names no option of any kind: a kind
  declares its rules in its own file.

It works on the YAML's data, so the result is a spec file a user can read (`shrink_text`), and the
loader validates it like any other. The data is walked with the schema: each mapping is read as the
section it parses into (a kind union's mapping as its `kind:`'s options, or the registry's default
kind; a block override as a Block), and each field's rule applied to the value written there.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import yaml

from ..lengths import LONG_FROM
from .load import parse_spec
from .model import Spec
from .schema import KindRegistry
from .shrink_rules import Scale, Sizes

MAX_HEADS, MAX_KV_HEADS, HEAD_WIDTH, VOCAB, SHORT_LENGTH = 4, 2, 8, 64, 64


def shrink_text(text: str) -> str:
    """The YAML of a valid spec -> the YAML of its shrunk copy."""
    return yaml.safe_dump(shrink_data(yaml.safe_load(text)), sort_keys=False, default_flow_style=None, width=120)


def shrink_spec(spec: Spec | str | Path) -> Spec:
    """A spec file (or a loaded spec, read again from its file) -> its shrunk copy, validated."""
    path = Path(spec.source if isinstance(spec, Spec) else spec)
    return parse_spec(shrink_text(path.read_text(encoding="utf-8")), f"{path} (shrunk)")


def shrink_data(data: dict) -> dict:
    """The parsed YAML of a valid spec -> that of its shrunk copy (a new mapping)."""
    data = yaml.safe_load(yaml.safe_dump(data, sort_keys=False))  # a deep copy, in the same order
    model = data["model"]
    old = _sizes(model)
    _shrink_model(model)
    scale = Scale(old, _sizes(model), _grid_factor(data))  # the grids as written, before layers are renumbered
    interleaved = isinstance(data.get("document"), dict) and data["document"].get("interleaved")
    shared = _boundaries(data.get("encoder")) | _boundaries(data.get("document")) if interleaved else set()
    for name in ("encoder", "decoder", "document"):
        if isinstance(data.get(name), dict):
            _shrink_stack(data[name], shared)
    _shrink_options(data, scale)
    if isinstance(data.get("name"), str):
        data["name"] = f"{data['name']}-shrunk"
    return data


def _sizes(model: dict) -> Sizes:
    return Sizes(model["heads"], model.get("head_width") or model["width"] // model["heads"], model["width"],
                 model["vocab_size"])


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in range(1, min(n, at_most) + 1) if n % d == 0)


def _shrink_model(model: dict) -> None:
    heads, kv = model["heads"], model.get("kv_heads") or model["heads"]
    if kv < heads:  # grouped-query or multi-query: keep the number of query heads per key-value head
        new_kv = _largest_divisor(kv, MAX_KV_HEADS)
        new_heads = new_kv * (heads // kv)
    else:
        new_heads = new_kv = _largest_divisor(heads, MAX_HEADS)
    head_width = HEAD_WIDTH if new_heads > 1 else 2 * HEAD_WIDTH
    width = model["width"]
    model["heads"] = new_heads
    if model.get("kv_heads") is not None:
        model["kv_heads"] = new_kv
    if model.get("head_width") is not None:
        model["head_width"] = head_width
    model["width"] = new_heads * head_width
    model["ffn_width"] = max(2, round(model["ffn_width"] * model["width"] / width))
    model["vocab_size"] = min(model["vocab_size"], VOCAB)
    length = model["max_length"]
    model["max_length"] = LONG_FROM if length >= LONG_FROM else min(length, SHORT_LENGTH)


# --- layers -----------------------------------------------------------------------------------------
def _boundaries(stack) -> set[int]:
    """Layers where the block changes: overrides' edges, poolings and the upsampling."""
    if not isinstance(stack, dict):
        return set()
    points = {0, stack["layers"]}
    for override in _overrides(stack):
        first, last = override["layers"]
        points |= {first, last + 1}
    resample = stack.get("resample")
    if resample:
        points |= set(resample["shorten_at"])
        if resample.get("upsample_at") is not None:
            points.add(resample["upsample_at"])
    return points


def _overrides(stack: dict) -> list[dict]:
    return [o for o in stack.get("overrides") or () if isinstance(o, dict)]  # the loader skips empty entries


def _shrink_stack(stack: dict, shared: set[int]) -> None:
    layers = stack["layers"]
    points = sorted(p for p in _boundaries(stack) | shared if p <= layers)
    runs = list(zip(points, points[1:]))
    keep = [min(last - first, 2) for first, last in runs]
    start = {first: sum(keep[:i]) for i, (first, _) in enumerate(runs)}
    start[layers] = sum(keep)

    def renumber(layer: int) -> int:  # a layer on a boundary
        return start[layer]

    stack["layers"] = sum(keep)
    for override in _overrides(stack):
        first, last = override["layers"]
        override["layers"] = [renumber(first), renumber(last + 1) - 1]
    resample = stack.get("resample")
    if resample:
        resample["shorten_at"] = [renumber(p) for p in resample["shorten_at"]]
        if resample.get("upsample_at") is not None:
            resample["upsample_at"] = renumber(resample["upsample_at"])


# --- options ---------------------------------------------------------------------------------------
def _sections(data: dict, cls: type):
    """(mapping, section class) for a mapping that parses into ``cls`` and every mapping written in it."""
    yield data, cls
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if isinstance(data.get(f.name), (dict, list)):
            yield from _value_sections(data[f.name], hints[f.name], f.metadata)


def _value_sections(value, hint, meta):
    """The sections a field's value holds: a kind union's options, a block override, a nested section
    (optional or not) or a list of sections."""
    registry, partial = meta.get("registry"), meta.get("partial_of")
    if isinstance(registry, KindRegistry):
        if isinstance(value, dict) and value.get("kind", registry.default) in registry.kinds:
            yield from _sections(value, registry.kinds[value.get("kind", registry.default)])
        return
    if partial is not None:
        if isinstance(value, dict):
            yield from _sections(value, partial)
        return
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            yield from _value_sections(value, option, {})
    elif typing.get_origin(hint) is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        for entry in value:
            yield from _value_sections(entry, item, {})
    elif dataclasses.is_dataclass(hint) and isinstance(value, dict):
        yield from _sections(value, hint)


def _rules(cls: type):
    """(field name, shrink rule) of every field of a section that declares one."""
    return [(f.name, f.metadata["shrink"]) for f in dataclasses.fields(cls) if f.metadata.get("shrink")]


def _written(section: dict, key: str) -> bool:
    value = section.get(key)
    return value is not None and not isinstance(value, bool)


def _grid_factor(data: dict) -> int:
    """The largest power of two that divides every grid value and leaves each at least 2."""
    values = [v for section, cls in _sections(data, Spec) for key, rule in _rules(cls)
              if rule.grid_values is not None and _written(section, key)
              for v in rule.grid_values(section[key], section)]
    factor = 1
    while values and all(v % (2 * factor) == 0 and v // (2 * factor) >= 2 for v in values):
        factor *= 2
    return factor


def _shrink_options(data: dict, scale: Scale) -> None:
    """Apply every declared rule to the option written in each section; late rules (which read the
    section's other, already shrunk, options) last."""
    for section, cls in list(_sections(data, Spec)):
        rules = _rules(cls)
        for key, rule in [r for r in rules if not r[1].late] + [r for r in rules if r[1].late]:
            if _written(section, key):
                section[key] = rule.apply(section[key], section, scale)
