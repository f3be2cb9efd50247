"""Pure, vectorised metric kernels and estimators (NumPy, SciPy, pandas only)."""

from .ranking import RANKING_METRICS, RankingResult, evaluate_ranking

__all__ = ["RANKING_METRICS", "RankingResult", "evaluate_ranking"]
