"""Positional schemes (the `positional` registry), one file per family."""
from . import absolute  # noqa: F401
