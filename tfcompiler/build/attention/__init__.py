"""Attention kinds (the `attention` registry), one file per kind."""
from . import multi_head  # noqa: F401
