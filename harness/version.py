"""The package version (a leaf: tracking tags runs with it)."""

__version__ = "0.1.0"
