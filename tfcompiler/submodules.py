"""Imports every module of a package whose modules register themselves (the kind packages under
builders/, the IR's op set, the lowerings), so that a new kind, op or lowering is its own file and
its registration line: no import list names it."""
from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, path) -> None:
    """Import each module under `path` (a package's ``__path__``) in name order: the registries then
    fill in the same order on every machine."""
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{module.name}")
