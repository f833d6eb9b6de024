"""Weights that are recipes until an array is needed (`np.asarray(weight)` makes one): seeded
initialisations, packed and quantized weights. The model writer reads their shape, dtype and size
without making them, and makes them on all cores while it writes earlier weights."""
from __future__ import annotations

import numpy as np


class Recipe:
    """Mixin for a recipe with `shape` and `dtype`; subclasses define `__array__`."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize
