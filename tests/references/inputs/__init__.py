"""NumPy references of the input layers, one module per kind; the package imports them all."""
