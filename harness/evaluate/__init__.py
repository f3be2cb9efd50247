"""Evaluation families and the loop that runs them over a run's models.

Built-in families: ``ranking`` (always), ``beyond_accuracy``, ``calibration`` and
``off_policy``, each configured by its ``evaluate.<key>`` block. A new family is one
:class:`~harness.evaluate.family.Family` subclass plus its config block, registered
with :func:`register_family`; nothing else changes.
"""

from __future__ import annotations

from harness.evaluate.ab import ABFamily
from harness.evaluate.beyond_accuracy import BeyondAccuracyFamily
from harness.evaluate.calibration import CalibrationFamily
from harness.evaluate.engine import Evaluation
from harness.evaluate.family import Effect, Family, FamilyResult, MetricValue, ModelOutput, mean_values
from harness.evaluate.off_policy import OffPolicyFamily
from harness.evaluate.ranking import RankingFamily
from harness.evaluate.registry import FAMILIES, family_class, register_family

__all__ = ["ABFamily", "BeyondAccuracyFamily", "CalibrationFamily", "Effect", "Evaluation", "FAMILIES", "Family", "FamilyResult",
           "MetricValue", "ModelOutput", "OffPolicyFamily", "RankingFamily", "family_class", "mean_values",
           "register_family"]
