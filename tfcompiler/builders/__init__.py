"""Build stage: typed spec -> IR graph. Importing this package registers every input layer,
positional scheme, attention kind and head with the spec's registries."""
from . import attention, heads, inputs, positional  # noqa: F401
from .model import build_graph

__all__ = ["build_graph"]
