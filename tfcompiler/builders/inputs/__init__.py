"""Input layers (the `input` registry): token ids (tokens.py) and continuous vectors (vectors.py); patches
and spectrogram frames register here later, each in its own file (each registers itself). base.py holds
what they share: the graph inputs' names per stack, the padding mask, the embedding scale."""
from ...submodules import import_submodules

import_submodules(__name__, __path__)
