"""The Spark backend: the harness's numbers on data no single machine holds.

Every function takes Spark DataFrames and returns what its local counterpart returns,
to 1e-9, with per-unit values left distributed: ranking metrics
(:func:`evaluate_ranking`), off-policy estimates with analytic or Poisson-bootstrap
intervals (:func:`estimate_off_policy`), paired comparisons and the launch gate
(:func:`paired_comparison`), A/B sufficient statistics (:func:`ab_moments`). pyspark is
imported inside these functions only (``pip install 'recsys-harness[spark]'``).
"""

from __future__ import annotations

from harness.lazy import lazy_exports

# module -> the public names it defines (loaded on first use: a Python worker that
# evaluates ranking metrics loads the ranking kernels, not the A/B or off-policy ones)
_MODULES = {
    "ab": ["ab_moments"],
    "off_policy": ["SparkOffPolicyResult", "estimate_off_policy"],
    "paired": ["paired_comparison"],
    "ranking": ["SparkRankingResult", "evaluate_ranking"],
    "session": ["read_table", "require_pyspark", "spark_session"],
    "tables": ["write_per_unit"],
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
