"""The documentation stays in step with the code: every generated part of docs/ is what the generator
writes now, every registered kind declares its own row of the variant tables, and every relative link
in README.md and docs/ points at a page and a heading that exist."""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

import pytest

from conftest import ROOT
from tfcompiler.builders.attention.multi_head import MultiHeadOptions
from tfcompiler.docs import PARTS, main, markers, part_of
from tfcompiler.language.jsonschema import REGISTRIES
from tfcompiler.language.reference import ROW, kind_row

DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
GENERATED = [(page, name) for page, parts in PARTS.items() for name in parts]
KINDS = [(registry, kind) for registry in REGISTRIES for kind in sorted(registry.kinds)]


@pytest.mark.parametrize("page, name", GENERATED, ids=[f"{page}:{name}" for page, name in GENERATED])
def test_generated_part_is_fresh(page, name):
    text = (DOCS / page).read_text(encoding="utf-8")
    assert part_of(text, name) == PARTS[page][name](), \
        f"docs/{page}'s {name} is stale: run `python -m tfcompiler.docs docs/`"


def test_the_generator_rewrites_a_stale_part_and_only_that(tmp_path, capsys):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    targets = docs / "targets.md"
    fresh = targets.read_text(encoding="utf-8")
    targets.write_text(fresh.replace("| `Gelu` |", "| `Gelu (old)` |"), encoding="utf-8")
    assert main([str(docs), "--check"]) == 1
    assert capsys.readouterr().out == "stale: targets.md:capability-table\n"
    assert main([str(docs)]) == 0
    assert targets.read_text(encoding="utf-8") == fresh
    assert main([str(docs), "--check"]) == 0


def test_a_page_without_its_markers_is_named(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    (docs / "targets.md").write_text("# Targets\n", encoding="utf-8")
    with pytest.raises(ValueError, match="targets.md: expected one <!-- capability-table:start -->"):
        main([str(docs), "--check"])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_marker_is_a_part_the_generator_writes(page):
    found = set(re.findall(r"^<!-- ([\w-]+):start -->$", page.read_text(encoding="utf-8"), re.M))
    expected = set(PARTS.get(page.name, {})) if page.parent == DOCS else set()
    assert found == expected
    for name in found:
        assert page.read_text(encoding="utf-8").count(markers(name)[1]) == 1, name


@pytest.mark.parametrize("registry, kind", KINDS, ids=[f"{r.name}:{kind}" for r, kind in KINDS])
def test_every_kind_documents_its_row(registry, kind):
    options = registry.kinds[kind]
    paper, computes, lowering = kind_row(options)
    assert computes.strip(), f"{options.__name__}.COMPUTES is empty"
    if kind != "none":  # no positions: no paper, nothing lowered
        assert paper.strip() and lowering.strip(), options.__name__


def test_a_kind_does_not_inherit_the_row_of_the_kind_it_extends():
    @dataclass(frozen=True, kw_only=True)
    class Extended(MultiHeadOptions):
        """An attention kind that extends multi_head's options but declares no row."""

    Extended.KIND = "extended"
    assert all(hasattr(Extended, name) for name in ROW)  # inherited, and still refused
    with pytest.raises(ValueError, match="Extended .kind 'extended'. declares no PAPER, COMPUTES, LOWERING"):
        kind_row(Extended)


def _anchors(page) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    anchors, seen = set(), {}
    for heading in re.findall(r"^#+ (.+)$", _prose(page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _prose(text: str) -> str:
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_relative_links_resolve(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading")
    assert not broken, broken


def test_readme_keeps_the_quick_start_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && tfc compile "
            "specs/gpt2-small.yaml -o gpt2/ --explain && tfc generate gpt2/ --input-ids '[[464, 3290, 318], "
            "[40, 1842]]' --max-new-tokens 16") in readme
    assert ('python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" && pip install --no-deps '
            'labml-nn==0.5.1 labml==0.5.3 && python -m pytest') in readme
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")  # CI runs the README's second command
    assert 'pip install --quiet -e ".[test]"' in ci
    assert "pip install --quiet --no-deps labml-nn==0.5.1 labml==0.5.3" in ci
