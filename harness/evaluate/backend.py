"""Where a family's numbers are computed: the backend protocol and the local backend.

A family asks its backend for the two computations that scale with the data: ranking
metrics of a run against the judgments, and off-policy intervals over the logged rows.
The local backend is :mod:`harness.metrics` itself; the Spark backend
(``harness.spark.backend``, chosen by ``engine: {kind: spark}``) implements the same
protocol and returns the same results, so the families, comparisons, results folder and
MLflow never know which one ran. Backends are passed down (by ``harness.apps``), never
imported here: the engine stage stays below the optional Spark package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    import pandas as pd

    from harness.metrics import OPEInputs
    from harness.metrics.off_policy import OffPolicyEstimator, OPEInterval
    from harness.metrics.ranking import RankingResult
    from harness.types import Ranking


class Backend(Protocol):
    """The computations a family delegates; each has the signature and result of the
    :mod:`harness.metrics` function of the same name."""

    name: str

    def evaluate_ranking(self, qrels: "pd.DataFrame", run: "pd.DataFrame | Ranking", metrics: str | list[str],
                         **options: Any) -> "RankingResult": ...

    def estimate_intervals(self, estimators: Sequence["OffPolicyEstimator"], data: "OPEInputs",
                           **options: Any) -> dict[str, "OPEInterval"]: ...


class LocalBackend:
    """NumPy/numba in this process: :mod:`harness.metrics` as it is."""

    name = "local"

    def evaluate_ranking(self, qrels: "pd.DataFrame", run: "pd.DataFrame | Ranking", metrics: str | list[str],
                         **options: Any) -> "RankingResult":
        from harness.metrics import evaluate_ranking

        return evaluate_ranking(qrels, run, metrics, **options)

    def estimate_intervals(self, estimators: Sequence["OffPolicyEstimator"], data: "OPEInputs",
                           **options: Any) -> dict[str, "OPEInterval"]:
        from harness.metrics.off_policy import estimate_intervals

        return estimate_intervals(estimators, data, **options)


LOCAL = LocalBackend()
