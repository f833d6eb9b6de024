"""Spec stage: YAML -> typed, validated :class:`Spec`."""
from .load import load_spec, parse_spec
from .model import Block, Dims, Spec, Stack

__all__ = ["load_spec", "parse_spec", "Spec", "Dims", "Block", "Stack"]
