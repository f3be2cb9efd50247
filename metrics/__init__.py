"""Pure, vectorised metric kernels and estimators (NumPy, SciPy, pandas; numba kernels)."""

from .ranking import RANKING_METRICS, RankingResult, evaluate_ranking, metric_curves

__all__ = ["RANKING_METRICS", "RankingResult", "evaluate_ranking", "metric_curves"]
