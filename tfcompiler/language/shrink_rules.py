"""How an option shrinks to toy size: the rules a field declares with ``option(shrink=...)``.

The shrinker (shrink.py) walks a spec's YAML with the schema and applies each field's rule, so a kind
whose option scales with positions, heads or widths says so on the option itself, in its own file:

    window: int = option(doc="...", minimum=1, shrink=cap(2))

A rule sees the option's value (never None or a boolean: those stay as written), the mapping it is
written in, and the :class:`Scale` of the whole spec: the model's sizes before and after shrinking and
the grid factor. This module is a leaf: the builders import it, it imports nothing of the compiler.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Sizes:
    """What options scale with: heads, head width, model width and the vocabulary."""

    heads: int
    head_width: int
    width: int
    vocab_size: int


@dataclass(frozen=True)
class Scale:
    """The model's sizes before and after shrinking, and the power of two every grid option is divided by."""

    old: Sizes
    new: Sizes
    grid: int


@dataclass(frozen=True)
class Rule:
    """One option's shrink rule: ``apply(value, section, scale)`` gives the shrunk value. A grid rule
    also gives the values the grid factor must divide (``grid_values(value, section)``); a late rule
    runs after the other options of its section, whose shrunk values it reads."""

    name: str
    apply: Callable[[Any, dict, Scale], Any]
    grid_values: Callable[[Any, dict], list[int]] | None = None
    late: bool = False

    def __repr__(self) -> str:
        return self.name


def cap(limit: int) -> Rule:
    """At most ``limit``: positions, entries or buckets, small enough for short check inputs to cross."""
    return Rule(f"cap({limit})", lambda value, section, scale: min(value, limit))


def odd_cap(limit: int) -> Rule:
    """A kernel length at most ``limit`` (odd): an odd kernel stays odd, 0 (none) stays 0."""
    if limit % 2 == 0:
        raise ValueError(f"odd_cap({limit}): the cap of a kernel length must be odd")
    return Rule(f"odd_cap({limit})", lambda value, section, scale: min(value, limit))


def at_most(other: str) -> Rule:
    """No more than the section's (shrunk) ``other`` option, e.g. a block's summary within its stride."""
    def apply(value, section, scale):
        return min(value, section[other]) if other in section else value
    return Rule(f"at_most({other!r})", apply, late=True)


def per_head(cap: int) -> Rule:
    """A list of one value for every head, or one per head (thinned to the kept heads), each capped."""
    def apply(value, section, scale):
        old, new = scale.old.heads, scale.new.heads
        values = value[::old // new] if len(value) == old > 1 else value
        return [min(v, cap) for v in values]
    return Rule(f"per_head(cap={cap})", apply)


def _divided(value, section, scale):
    return [v // scale.grid for v in value] if isinstance(value, list) else value // scale.grid


def _grid_values(value, section) -> list[int]:
    return [v for v in value if v] if isinstance(value, list) else [value]


def _pooled_grid_values(value, section) -> list[int]:
    # the grid the innermost pooled layers see must still divide
    return [value // section.get("stride", 2) ** len(section["shorten_at"])] if value else []


# the 2-D grid widths (an integer, or a list of grid lengths): divided by the one power of two that keeps
# every grid of the spec at least 2 wide, so their ratios (and pooled grids' rows) still match
grid = Rule("grid", _divided, _grid_values)
# a grid width that pooling (the section's `stride`, at each of its `shorten_at` layers) narrows
pooled_grid = Rule("pooled_grid", _divided, _pooled_grid_values)
# a count of heads out of all of them (0: none, stays 0): the same share of the kept heads, at least one
# and never all of them
with_heads = Rule("with_heads", lambda value, section, scale: value and min(
    max(1, value * scale.new.heads // scale.old.heads), scale.new.heads - 1))
# features per head (even): the same share of the shrunk head width
with_head_width = Rule("with_head_width", lambda value, section, scale: max(
    2, 2 * round(value * scale.new.head_width / scale.old.head_width / 2)))
# a width beside the model's: the same share of the shrunk width, rounded up
with_width = Rule("with_width", lambda value, section, scale: max(
    1, math.ceil(value * scale.new.width / scale.old.width)))
# a token id (or a list of them): kept where the shrunk vocabulary still holds it, else wrapped into it
token_id = Rule("token_id", lambda value, section, scale: [v % scale.new.vocab_size for v in value]
                if isinstance(value, list) else value % scale.new.vocab_size)
# an input's feature count beside the model's width: the shrunk width where it is the width (no projection),
# else at most 8, below every shrunk width (16 and up), so the projection stays
input_features = Rule("input_features", lambda value, section, scale: scale.new.width if value == scale.old.width
                      else min(value, 8))
