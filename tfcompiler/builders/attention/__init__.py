"""Attention kinds (the `attention` registry), one file per kind: each registers itself."""
from ...submodules import import_submodules

import_submodules(__name__, __path__)
