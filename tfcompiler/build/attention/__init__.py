"""Attention kinds (the `attention` registry), one file per kind."""
from . import (bigbird, block_local, collaborative, induced, linear, linformer, longformer,  # noqa: F401
               memory_compressed, multi_head, nystrom, performer, prob_sparse, rfa, sliding_window,
               sparse_transformer)
