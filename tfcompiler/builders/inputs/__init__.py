"""Input layers (the `input` registry): token ids now; patches, spectrogram frames and continuous
vectors register here later, each in its own file (each registers itself)."""
from ..kind_modules import import_kind_modules

import_kind_modules(__name__, __path__)
