"""The package version, recorded in every compiled model's metadata."""
__version__ = "0.1.0"
