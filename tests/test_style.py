"""The style rules a reader relies on (../shared/style.md): every Python module opens with a docstring
that says what it is for, and no line runs past 120 columns."""
from __future__ import annotations

import ast

import pytest

from conftest import ROOT

MODULES = sorted(path for folder in ("tfcompiler", "tests", "runtime", "benchmarks")
                 for path in (ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(ROOT)))
def test_module_has_a_docstring_and_short_lines(path):
    text = path.read_text(encoding="utf-8")
    assert ast.get_docstring(ast.parse(text)), "no module docstring"
    long = [number for number, line in enumerate(text.splitlines(), 1) if len(line) > 120]
    assert not long, f"lines over 120 columns: {long}"
