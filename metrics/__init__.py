"""Pure, vectorised metric kernels and estimators (NumPy, SciPy, pandas; numba kernels).

Names load on first use (:mod:`harness.lazy`): importing one family's kernels does not
load the others'.
"""

from harness.lazy import lazy_exports

# module -> the public names it defines
_MODULES = {
    "beyond_accuracy": ["average_popularity", "catalog_coverage", "exposure_counts", "gini_index", "intra_list_diversity",
        "novelty", "personalization"],
    "ranking": ["RANKING_METRICS", "RankingResult", "evaluate_ranking", "metric_curves"],
    "calibrated_recs": ["calibration_kl", "mean_calibration_kl"],
    "calibration": ["CALIBRATION_METRICS", "brier_decomposition", "brier_score", "brier_score_per_row",
        "calibration_by_segment", "calibration_slope_intercept", "calibration_summary",
        "debiased_calibration_error", "evaluate_calibration", "expected_calibration_error", "log_loss",
        "log_loss_per_row", "normalized_entropy", "observed_expected_ratio", "reliability_curve",
        "wilson_interval"],
    "calibration_stats": ["calibration_statistics", "ece_bootstrap", "ece_statistic"],
    "off_policy": ["DM", "DR", "DRos", "ESTIMATORS", "IPS", "OPEInputs", "OPEInterval", "OffPolicyEstimator", "SNDR",
        "SNIPS", "SwitchDR", "estimate_intervals"],
    "ope_diagnostics": ["WeightDiagnostics", "support_deficiency", "weight_diagnostics"],
    "ope_evaluate": ["OffPolicyResult", "compare_policies", "evaluate_off_policy", "make_estimator"],
    "slate": ["SlateIndependentIPS", "SlateInputs", "SlateRewardInteractionIPS", "SlateStandardIPS", "slate_pscores"],
    "decomposition": ["SegmentDecomposition", "decompose_by_segment"],
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
