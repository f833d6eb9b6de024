"""Positional schemes (the `positional` registry), one file per family: each registers itself."""
from ...submodules import import_submodules

import_submodules(__name__, __path__)
