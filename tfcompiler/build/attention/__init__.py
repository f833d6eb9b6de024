"""Attention kinds (the `attention` registry), one file per kind."""
from . import (bigbird, block_local, collaborative, linear, longformer, multi_head, performer,  # noqa: F401
               rfa, sliding_window, sparse_transformer)
