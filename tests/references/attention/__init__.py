"""NumPy references of the attention kinds, one module per kind (``multi_head`` also holds the
softmax attention the other softmax kinds build on); importing the package registers them."""
from . import (bigbird, block_local, block_local_2d, clustered, collaborative, induced, linear,  # noqa: F401
               linformer, longformer, lsh, memory_compressed, multi_head, nystrom, performer, prob_sparse,
               recurrent, rfa, routing, sliding_window, sparse_transformer, star)
