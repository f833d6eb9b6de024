"""NumPy reference transformers, written from the papers, not from tfcompiler's IR (and importing
nothing from tfcompiler: option values are read by attribute from the parsed spec handed in).

One module per kind under inputs/, positional/ and attention/, each registering itself by kind name
in registry.py; the spine (formulas.py; model.py's ``Reference`` with its resample, hierarchy and
memory mixins) dispatches through those registries. Importing this package imports every module
under it, so a new kind's file registers itself with no list to edit."""
import importlib
import pkgutil

for _module in pkgutil.walk_packages(__path__, f"{__name__}."):
    importlib.import_module(_module.name)

from .model import Reference  # noqa: E402
from .positional.absolute import sinusoidal_table  # noqa: E402
from .positional.deberta import deberta_bucket  # noqa: E402
from .positional.t5 import t5_bucket  # noqa: E402
from .registry import ATTENTION, HEADS, INPUTS, POSITIONS  # noqa: E402

__all__ = ["ATTENTION", "HEADS", "INPUTS", "POSITIONS", "Reference", "deberta_bucket", "sinusoidal_table", "t5_bucket"]
