"""Positional schemes (the `positional` registry), one file per family."""
from . import absolute, rotary  # noqa: F401
