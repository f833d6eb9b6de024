"""Attention kinds (the `attention` registry), one file per kind."""
from . import (bigbird, block_local, block_local_2d, clustered, collaborative, induced, linear,  # noqa: F401
               linformer, longformer, lsh, memory_compressed, multi_head, nystrom, performer, prob_sparse,
               recurrent, rfa, routing, sliding_window, sparse_transformer, star)
