"""NumPy references of the attention kinds, one module per kind (``multi_head`` also holds the
softmax attention the other softmax kinds build on); the package imports them all."""
