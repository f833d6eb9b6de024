"""NumPy reference transformers, written from the papers, not from tfcompiler's IR (and importing
nothing from tfcompiler: option values are read by attribute from the parsed spec handed in).

One module per kind under inputs/, positional/ and attention/, each registering itself by kind name
in registry.py; the spine (formulas.py; model.py's ``Reference`` with its resample, hierarchy and
memory mixins) dispatches through those registries. Importing this package registers every kind."""
from . import attention, inputs, positional  # noqa: F401
from .model import Reference
from .positional.absolute import sinusoidal_table
from .positional.deberta import deberta_bucket
from .positional.t5 import t5_bucket
from .registry import ATTENTION, INPUTS, POSITIONS

__all__ = ["ATTENTION", "INPUTS", "POSITIONS", "Reference", "deberta_bucket", "sinusoidal_table", "t5_bucket"]
