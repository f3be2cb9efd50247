"""Evaluation families and the loop that runs them over a run's models.

Built-in families: ``ranking`` (always), ``beyond_accuracy``, ``calibration`` and
``off_policy``, each configured by its ``evaluate.<key>`` block. A new family is one
:class:`~harness.evaluate.family.Family` subclass plus its config block, registered
with :func:`register_family`; nothing else changes.

Names load on first use (:mod:`harness.lazy`).
"""

from harness.lazy import lazy_exports

# module -> the public names it defines
_MODULES = {
    "ab": ["ABFamily"],
    "beyond_accuracy": ["BeyondAccuracyFamily"],
    "calibration": ["CalibrationFamily"],
    "engine": ["Evaluation"],
    "family": ["Effect", "Family", "FamilyResult", "MetricValue", "ModelOutput", "mean_values"],
    "off_policy": ["OffPolicyFamily"],
    "ranking": ["RankingFamily"],
    "registry": ["FAMILIES", "family_class", "register_family"],
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
