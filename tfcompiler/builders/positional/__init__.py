"""Positional schemes (the `positional` registry), one file per family: each registers itself."""
from ..kind_modules import import_kind_modules

import_kind_modules(__name__, __path__)
