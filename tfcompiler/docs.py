"""Writes the generated parts of the documentation in docs/: the spec language reference, the variant
tables and options of every kind registry, and the targets' capability table. Each part sits in its
page between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` markers, with hand-written text around
it; its text comes from where the thing is declared (the language's dataclasses, each kind's options
class, lower/targets.py), so the pages cannot drift from the code. tests/test_docs.py fails on a
stale part.

    python -m tfcompiler.docs docs/           # rewrite the stale parts in place
    python -m tfcompiler.docs docs/ --check   # list them, exit 1 if any
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import Callable

from .language import reference
from .language.jsonschema import REGISTRIES
from .lower.targets import capability_table


def _parts() -> dict[str, dict[str, Callable[[], str]]]:
    """page -> part name -> the function that renders the part."""
    variants = {}
    for registry in REGISTRIES:
        variants[f"{registry.name}-table"] = functools.partial(reference.variant_table, registry)
        variants[f"{registry.name}-options"] = functools.partial(reference.kind_options, registry)
    return {"language.md": {"spec-reference": reference.sections_reference},
            "variants.md": variants,
            "targets.md": {"capability-table": lambda: capability_table() + "\n"}}


PARTS = _parts()


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def part_of(text: str, name: str) -> str:
    """The text between the part's markers (the markers' own lines excluded)."""
    start, end = markers(name)
    if text.count(start) != 1 or text.count(end) != 1:
        raise ValueError(f"expected one {start} and one {end}")
    return text.split(start, 1)[1].split(end, 1)[0].removeprefix("\n")


def with_part(text: str, name: str, body: str) -> str:
    """``text`` with the part ``name`` replaced by ``body``."""
    start, end = markers(name)
    part_of(text, name)  # checks the markers
    head, rest = text.split(start, 1)
    return f"{head}{start}\n{body}{end}{rest.split(end, 1)[1]}"


def refresh(docs: Path, check: bool = False) -> list[str]:
    """Rewrite (unless ``check``) the stale parts under ``docs``; return them as ``page:part``."""
    stale = []
    for page, parts in PARTS.items():
        path = docs / page
        text = new = path.read_text(encoding="utf-8")
        for name, render in parts.items():
            body = render()
            try:
                current = part_of(new, name)
            except ValueError as error:
                raise ValueError(f"{path}: {error}") from None
            if current != body:
                stale.append(f"{page}:{name}")
                new = with_part(new, name, body)
        if new != text and not check:
            path.write_text(new, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tfcompiler.docs", description=__doc__.split("\n\n")[0])
    parser.add_argument("docs", type=Path, help="the docs/ folder")
    parser.add_argument("--check", action="store_true", help="only list the stale parts (exit 1 if any)")
    args = parser.parse_args(argv)
    stale = refresh(args.docs, check=args.check)
    for name in stale:
        print(("stale: " if args.check else "rewrote: ") + name)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
