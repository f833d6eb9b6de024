"""Input layers (the `input` registry): token ids now; patches, spectrogram frames and continuous
vectors register here later, each in its own file (each registers itself)."""
from ...submodules import import_submodules

import_submodules(__name__, __path__)
