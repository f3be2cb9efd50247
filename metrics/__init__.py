"""Pure, vectorised metric kernels and estimators (NumPy, SciPy, pandas; numba kernels)."""

from .beyond_accuracy import (average_popularity, catalog_coverage, exposure_counts, gini_index,
                              intra_list_diversity, novelty, personalization)
from .ranking import RANKING_METRICS, RankingResult, evaluate_ranking, metric_curves

__all__ = [
    "RANKING_METRICS", "RankingResult", "average_popularity", "catalog_coverage", "evaluate_ranking",
    "exposure_counts", "gini_index", "intra_list_diversity", "metric_curves", "novelty",
    "personalization",
]
