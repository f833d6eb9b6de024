"""NumPy references of the input layers, one module per kind; importing the package registers them."""
from . import tokens  # noqa: F401
