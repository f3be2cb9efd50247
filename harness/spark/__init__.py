"""The Spark backend: the harness's numbers on data no single machine holds.

Every function takes Spark DataFrames and returns what its local counterpart returns,
to 1e-9, with per-unit values left distributed: ranking metrics
(:func:`evaluate_ranking`), off-policy estimates with analytic or Poisson-bootstrap
intervals (:func:`estimate_off_policy`), paired comparisons and the launch gate
(:func:`paired_comparison`), A/B sufficient statistics (:func:`ab_moments`). pyspark is
imported inside these functions only (``pip install 'recsys-harness[spark]'``).
"""

from __future__ import annotations

from .ab import ab_moments
from .off_policy import SparkOffPolicyResult, estimate_off_policy
from .paired import paired_comparison
from .ranking import SparkRankingResult, evaluate_ranking
from .session import read_table, require_pyspark, spark_session
from .tables import write_per_unit

__all__ = ["SparkOffPolicyResult", "SparkRankingResult", "ab_moments", "estimate_off_policy", "evaluate_ranking",
           "paired_comparison", "read_table", "require_pyspark", "spark_session", "write_per_unit"]
