"""NumPy references of the positional schemes, one module per kind (``absolute`` holds the learned,
sinusoidal, scaled sinusoidal and no positions); the package imports them all."""
