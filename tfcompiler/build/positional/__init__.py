"""Positional schemes (the `positional` registry), one file per family."""
from . import absolute, alibi, rotary  # noqa: F401
