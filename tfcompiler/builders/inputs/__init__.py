"""Input layers (the `input` registry): token ids now; patches, spectrogram frames and continuous
vectors register here later, each in its own file."""
from . import tokens  # noqa: F401
