"""Shrink a spec: the same architecture at toy size, for checks that evaluate every op in NumPy.

`tfc compile --verify` evaluates the IR before and after every pass; on a full-size model (BERT-base,
110M parameters) that takes minutes. The shrunk copy keeps everything that decides the graph's
structure and the passes' decisions, and makes every size small:

- every kind, option, norm, activation, placement, head, input and topology stays as written;
- heads: at most 4 (a divisor of the original, so per-head lists thin out evenly); grouped-query and
  multi-query models keep their query heads per key-value head, over at most 2 key-value heads; head
  width 8 (16 with one head), the width heads x head width; ffn_width keeps its ratio to the width;
  the vocabulary at most 64 tokens;
- max_length stays on its side of LONG_FROM (the length from which the compiler lowers for long inputs
  and packs projections only inside token chunks): 64 below, LONG_FROM from there;
- layers: each run of layers that share one block (between overrides, poolings and upsamplings)
  keeps two (so a layer still follows one like it: residual scores, shared tables and masks, what
  common-subexpression elimination merges); overrides, shorten_at and upsample_at are renumbered;
- options that scale with positions (windows, blocks, chunks, strides, landmarks, projected lengths,
  inducing points, clusters, random features, buckets and distances, spans, memories, memory slots)
  are capped small, so short check inputs still cross them; the 2-D grid options (row_length,
  query_shape, memory_flange, grid widths) are divided by one power of two that keeps their ratios,
  so pooled grids still match the rows of the layers after them;
- options that scale with the heads or the head width (per-head spans, local_heads, rotary_dim,
  shared_width) follow them.

It works on the YAML's data, so the result is a spec file a user can read (`shrink_text`), and the
loader validates it like any other.
"""
from __future__ import annotations

import math
from pathlib import Path

import yaml

from ..lengths import LONG_FROM
from .load import parse_spec
from .model import Spec

MAX_HEADS, MAX_KV_HEADS, HEAD_WIDTH, VOCAB, SHORT_LENGTH = 4, 2, 8, 64, 64
KIND_SECTIONS = ("input", "positional", "attention", "cross_attention")  # kind unions, at any level

# options of kind sections (and their nested sections) capped to a small number of positions or entries
CAPS = {"window": 2, "block": 2, "chunk": 4, "stride": 2, "landmarks": 4, "projected_length": 4, "points": 4,
        "clusters": 4, "features": 8, "buckets": 4, "num_buckets": 8, "max_distance": 16, "position_buckets": 8,
        "max_relative_positions": 16, "max_span": 8, "ramp": 4, "compression": 3}
GRID = ("row_length", "grid_width")  # and the lists query_shape, memory_flange


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
    old = _Sizes(model)
    _shrink_model(model)
    new = _Sizes(model)
    grid = _grid_factor(data)
    interleaved = isinstance(data.get("document"), dict) and data["document"].get("interleaved")
    shared = _boundaries(data.get("encoder")) | _boundaries(data.get("document")) if interleaved else set()
    for name in ("encoder", "decoder", "document"):
        if isinstance(data.get(name), dict):
            _shrink_stack(data[name], shared)
            if (data[name].get("resample") or {}).get("grid_width"):
                data[name]["resample"]["grid_width"] //= grid
    _walk(data, old, new, grid)
    if isinstance(data.get("name"), str):
        data["name"] = f"{data['name']}-shrunk"
    return data


class _Sizes:
    """What scales with the model's sizes: heads and head width."""

    def __init__(self, model: dict):
        self.heads = model["heads"]
        self.head_width = model.get("head_width") or model["width"] // model["heads"]
        self.width = model["width"]


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
    if stack.get("memory"):
        stack["memory"] = min(stack["memory"], 4)
    if isinstance(stack.get("compressed_memory"), dict):
        stack["compressed_memory"]["length"] = min(stack["compressed_memory"]["length"], 2)
    if isinstance(stack.get("memory_slots"), dict):
        stack["memory_slots"]["count"] = min(stack["memory_slots"]["count"], 4)


# --- options ----------------------------------------------------------------------------------------
def _grid_values(data) -> list[int]:
    """Every 2-D grid option of the spec's kind sections, and each pooled grid's innermost width."""
    values = []
    for options in _kind_sections(data):
        values += [options[key] for key in GRID if isinstance(options.get(key), int)]
        values += [v for key in ("query_shape", "memory_flange") for v in options.get(key) or () if v]
    for name in ("encoder", "decoder", "document"):
        resample = (data.get(name) or {}).get("resample") or {}
        if resample.get("grid_width"):
            values.append(resample["grid_width"] // resample.get("stride", 2) ** len(resample["shorten_at"]))
    return values


def _grid_factor(data) -> int:
    """The largest power of two that divides every grid value and leaves each at least 2."""
    values = _grid_values(data)
    factor = 1
    while values and all(v % (2 * factor) == 0 and v // (2 * factor) >= 2 for v in values):
        factor *= 2
    return factor


def _kind_sections(node, in_kind: bool = False):
    """Every kind section's mapping (and the mappings nested in it), wherever it is written."""
    if isinstance(node, dict):
        if in_kind:
            yield node
        for key, value in node.items():
            yield from _kind_sections(value, in_kind or key in KIND_SECTIONS)
    elif isinstance(node, list):
        for value in node:
            yield from _kind_sections(value, in_kind)


def _walk(data, old: _Sizes, new: _Sizes, grid: int) -> None:
    for options in _kind_sections(data):
        for key, value in list(options.items()):
            options[key] = _option(key, value, old, new, grid)
        if "summary" in options and "stride" in options:  # the fixed pattern's summary fits in its stride
            options["summary"] = min(options["summary"], options["stride"])
    for ffn in _sections_named(data, "ffn"):
        if ffn.get("chunk"):
            ffn["chunk"] = min(ffn["chunk"], 2)


def _sections_named(node, name: str):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == name and isinstance(value, dict):
                yield value
            else:
                yield from _sections_named(value, name)
    elif isinstance(node, list):
        for value in node:
            yield from _sections_named(value, name)


def _option(key: str, value, old: _Sizes, new: _Sizes, grid: int):
    if isinstance(value, bool) or value is None:
        return value
    if key in CAPS and isinstance(value, int):
        return min(value, CAPS[key])
    if key in GRID and isinstance(value, int):
        return value // grid
    if key in ("query_shape", "memory_flange") and isinstance(value, list):
        return [v // grid for v in value]
    if key == "conv_kernel" and isinstance(value, int):
        return min(value, 3)  # odd stays odd, 0 (none) stays 0
    if key == "span" and isinstance(value, list):  # one span for all heads, or one per head
        spans = value[::old.heads // new.heads] if len(value) == old.heads > 1 else value
        return [min(v, 4) for v in spans]
    if key == "local_heads" and isinstance(value, int) and value:
        return min(max(1, value * new.heads // old.heads), new.heads - 1)
    if key == "rotary_dim" and isinstance(value, int):
        return max(2, 2 * round(value * new.head_width / old.head_width / 2))
    if key == "shared_width" and isinstance(value, int):
        return max(1, math.ceil(value * new.width / old.width))
    return value
