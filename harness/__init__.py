"""recsys-harness: evaluation harness for recommender and ranking systems.

Kept light on purpose: importing ``harness`` (or ``harness.metrics``) must not import
torch, xgboost or mlflow. Heavy parts load lazily where they are used.
"""

from __future__ import annotations

from harness.errors import (
    AdapterError,
    ConfigError,
    DataValidationError,
    HarnessError,
    ResultsError,
    TrackingError,
)

from harness.version import __version__

__all__ = [
    "AdapterError",
    "ConfigError",
    "DataValidationError",
    "HarnessError",
    "ResultsError",
    "TrackingError",
    "__version__",
]
