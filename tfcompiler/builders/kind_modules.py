"""Imports every module of a kind package (inputs/, positional/, attention/), so that a new kind's
file registers itself with its one registry line and no import list has to name it."""
from __future__ import annotations

import importlib
import pkgutil


def import_kind_modules(package: str, path) -> None:
    """Import each module under `path` (a package's ``__path__``) in name order: the registries then
    list their kinds in the same order on every machine."""
    for module in sorted(pkgutil.iter_modules(path), key=lambda m: m.name):
        importlib.import_module(f"{package}.{module.name}")
