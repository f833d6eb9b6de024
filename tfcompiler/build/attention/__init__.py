"""Attention kinds (the `attention` registry), one file per kind."""
from . import collaborative, multi_head  # noqa: F401
