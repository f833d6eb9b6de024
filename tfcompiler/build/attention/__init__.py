"""Attention kinds (the `attention` registry), one file per kind."""
from . import (bigbird, block_local, collaborative, longformer, multi_head, sliding_window,  # noqa: F401
               sparse_transformer)
