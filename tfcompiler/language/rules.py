"""Cross-field rules: how a section states them, and the walk that finds every section of a spec.

Every section of the language (the fixed ones in ``model.py`` and each kind's options) derives from
:class:`Section`. A rule that ties fields together lives on the section that owns it, as
``problems(spec, where)``: it yields a message (reported at the section's own path) or an :class:`At`
(reported at one of its keys). ``where`` says where the section sits — its path and the sections
around it — so one options class can judge itself in each place it is used. The loader calls
:func:`problems` and reports each at the YAML node of its path; no rule lives in the loader.

What the rules and the compiler ask of a kind is declared as a class attribute (see ``kinds.py``
for the kinds' own), never probed; ``refuses_low_precision`` here is one any section may declare.
"""
from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import ClassVar, Iterator

from ..errors import TfcError
from .schema import join


@dataclass(frozen=True)
class Where:
    """Where a section sits: its spec path (``decoder.layers[2].block.attention``) and the sections
    that enclose it, outermost (the Spec) first."""

    path: str
    parents: tuple = ()

    @property
    def stack(self) -> str:
        """The top-level key it sits under: a stack's name for the stack and all its parts."""
        return self.path.split(".")[0]

    @property
    def owner(self):
        """The section that holds this one."""
        return self.parents[-1]


@dataclass(frozen=True)
class At:
    """A problem with the key ``key`` of the section. ``located``: the spec path whose YAML node
    locates it instead (for a key that is absent, such as a missing stack)."""

    key: str
    message: str
    located: str | None = None


class Section:
    """Base of every spec section: no rules until it states some, no parts beyond its fields."""

    KIND: ClassVar[str] = ""  # a kind's name (its registry sets it); "" for the fixed sections
    # Why computing in fp16 / bf16 is refused (a measured reason), or None: it computes in them
    # within their rounding. compile_spec refuses such a --dtype, naming the section's path.
    refuses_low_precision: ClassVar[str | None] = None

    def problems(self, spec, where: Where) -> Iterator[str | At]:
        """Messages (or :class:`At`) for the rules this section breaks in ``spec``."""
        return iter(())

    def parts(self, spec, where: Where) -> Iterator[tuple[str, object]]:
        """(key, value) of what the walk visits inside this section: its declared fields."""
        for f in dataclasses.fields(self):
            if "doc" in f.metadata:
                yield f.name, getattr(self, f.name)


def walk(spec) -> Iterator[tuple[Section, Where]]:
    """Every section of a parsed spec with where it sits, each before its parts."""
    yield from _walk(spec, spec, Where(""))


def _walk(spec, section: Section, where: Where):
    yield section, where
    inside = where.parents + (section,)
    for key, value in section.parts(spec, where):
        items = [(f"{key}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else [(key, value)]
        for name, part in items:
            if isinstance(part, Section):
                yield from _walk(spec, part, Where(join(where.path, name), inside))


def problems(spec) -> Iterator[tuple[str, str, str]]:
    """(path, located, message) for every rule the spec breaks: ``located`` is the spec path whose
    YAML node the problem points at."""
    for section, where in walk(spec):
        for problem in itertools.chain(past_the_positions(section, spec), section.problems(spec, where)):
            if isinstance(problem, At):
                path = join(where.path, problem.key)
                yield path, problem.located or path, problem.message
            else:
                yield where.path, where.path, problem


def past_the_positions(section: Section, spec) -> Iterator[At]:
    """A field that counts positions (``option(positions=True)``) past model.max_length: nothing longer
    than the longest sequence changes what the model computes, and its tables and index constants are
    sized by it before any input arrives."""
    longest = spec.model.max_length
    for field in dataclasses.fields(section):
        value = getattr(section, field.name)
        if field.metadata.get("positions") and isinstance(value, int) and value > longest:
            yield At(field.name, f"counts positions: expected at most model.max_length ({longest:,}), got {value:,}")


def low_precision_refusals(spec) -> list[tuple[str, Section]]:
    """(path, section) for each section that refuses to compute in fp16 / bf16."""
    return [(where.path, section) for section, where in walk(spec) if section.refuses_low_precision]


def check_precision(spec, dtype: str) -> None:
    """Raise a TfcError naming the first section (path and kind) that refuses to compute in ``dtype``."""
    refusals = low_precision_refusals(spec) if dtype != "fp32" else []
    if refusals:
        path, section = refusals[0]
        more = f" (and {len(refusals) - 1} more like it)" if len(refusals) > 1 else ""
        kind = f"'{section.KIND}' " if section.KIND else ""
        raise TfcError(f"{spec.source or '<spec>'}: {path}{more}: --dtype {dtype} is refused: {kind}"
                       f"{section.refuses_low_precision}; compile it with --dtype fp32")
