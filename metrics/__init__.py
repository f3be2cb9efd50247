"""Pure, vectorised metric kernels and estimators (NumPy, SciPy, pandas; numba kernels)."""

from .beyond_accuracy import (average_popularity, catalog_coverage, exposure_counts, gini_index,
                              intra_list_diversity, novelty, personalization)
from .ranking import RANKING_METRICS, RankingResult, evaluate_ranking, metric_curves
from .calibrated_recs import calibration_kl, mean_calibration_kl
from .calibration import (CALIBRATION_METRICS, brier_decomposition, brier_score, brier_score_per_row,
                          calibration_by_segment, calibration_slope_intercept, calibration_summary,
                          debiased_calibration_error, evaluate_calibration, expected_calibration_error,
                          log_loss, log_loss_per_row,
                          normalized_entropy, observed_expected_ratio, reliability_curve, wilson_interval)
from .calibration_stats import calibration_statistics, ece_bootstrap, ece_statistic

__all__ = [
    "RANKING_METRICS", "RankingResult", "average_popularity", "catalog_coverage", "evaluate_ranking",
    "exposure_counts", "gini_index", "intra_list_diversity", "metric_curves", "novelty",
    "personalization",
]
__all__ += [
    "CALIBRATION_METRICS", "brier_decomposition", "brier_score", "brier_score_per_row",
    "calibration_by_segment", "calibration_kl", "calibration_slope_intercept", "calibration_statistics",
    "calibration_summary", "debiased_calibration_error",
    "ece_bootstrap", "ece_statistic", "evaluate_calibration", "expected_calibration_error", "log_loss", "log_loss_per_row",
    "mean_calibration_kl", "normalized_entropy", "observed_expected_ratio", "reliability_curve",
    "wilson_interval",
]
from .off_policy import (DM, DR, ESTIMATORS, IPS, SNDR, SNIPS, DRos, OffPolicyEstimator, OPEInputs, OPEInterval,
                         SwitchDR, estimate_intervals)
from .ope_diagnostics import WeightDiagnostics, support_deficiency, weight_diagnostics
from .ope_evaluate import OffPolicyResult, compare_policies, evaluate_off_policy, make_estimator
from .slate import SlateIndependentIPS, SlateInputs, SlateRewardInteractionIPS, SlateStandardIPS, slate_pscores

__all__ += [
    "DM", "DR", "DRos", "ESTIMATORS", "IPS", "OPEInputs", "OPEInterval", "OffPolicyEstimator", "OffPolicyResult",
    "SNDR", "SNIPS", "SlateIndependentIPS", "SlateInputs", "SlateRewardInteractionIPS", "SlateStandardIPS",
    "SwitchDR", "WeightDiagnostics", "compare_policies", "estimate_intervals", "evaluate_off_policy",
    "make_estimator", "slate_pscores", "support_deficiency", "weight_diagnostics",
]
from .decomposition import SegmentDecomposition, decompose_by_segment

__all__ += ["SegmentDecomposition", "decompose_by_segment"]
