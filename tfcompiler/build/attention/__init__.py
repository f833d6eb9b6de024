"""Attention kinds (the `attention` registry), one file per kind."""
from . import (bigbird, block_local, collaborative, linear, linformer, longformer, multi_head,  # noqa: F401
               nystrom, performer, rfa, sliding_window, sparse_transformer)
