"""Loaders, schema checks, splits and synthetic generators with known ground truth."""

from .base import InteractionDataset, fingerprint_tables
from .synthetic import make_synthetic

__all__ = ["InteractionDataset", "fingerprint_tables", "make_synthetic"]
