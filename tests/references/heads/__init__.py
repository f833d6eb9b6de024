"""NumPy references of the output heads, one module per kind (or family of kinds); the package imports them all."""
