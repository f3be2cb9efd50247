"""Calibration of predicted probabilities against binary outcomes.

A model that feeds an auction, a bid or a multi-objective blend must output
probabilities that mean what they say: among rows predicted at 0.1, about 10 % should
be positive. These functions measure how far a model is from that, overall and per
segment (cohort, surface, popularity bucket).

Inputs are ``y`` (labels in {0, 1}) and ``p`` (predicted P(y = 1) in [0, 1]), checked
once at the door by :func:`check_labels_probabilities`. Binning (edges, empty bins)
is described in :mod:`harness.metrics._binning`; bootstrap intervals and paired
comparisons of these metrics are in :mod:`harness.metrics.calibration_stats`.

References
----------
.. [1] Naeini, Cooper, Hauskrecht (2015). Obtaining well calibrated probabilities
   using Bayesian binning. AAAI. (ECE, MCE)
.. [2] Murphy (1973). A new vector partition of the probability score. J. Appl.
   Meteorol. 12. (reliability, resolution, uncertainty)
.. [3] Stephenson, Coelho, Jolliffe (2008). Two extra components in the Brier score
   decomposition. Weather and Forecasting 23. (within-bin variance and covariance)
.. [4] He et al. (2014). Practical lessons from predicting clicks on ads at Facebook.
   ADKDD. (normalized entropy)
.. [5] Cox (1958). Two further applications of a model for binary regression.
   Biometrika 45. (calibration slope and intercept)
.. [6] Wilson (1927). Probable inference, the law of succession, and statistical
   inference. JASA 22.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import DataValidationError, describe_examples
from harness.options import check_choice, check_confidence, check_number

from ._binning import binned_sums, check_bin_options, group_codes

NORMS = ("l1", "l2", "max")
DEFAULT_EPS = 1e-15
# metric name -> cut-off rule, for harness.metrics._names.parse_metric_names
CALIBRATION_METRICS = {name: "none" for name in (
    "ece", "ece_debiased", "mce", "brier", "log_loss", "normalized_entropy", "oe_ratio",
    "calibration_slope", "calibration_intercept", "reliability", "resolution", "uncertainty")}
# the metrics that are means over rows: they have per-row contributions
PER_ROW_METRICS = ("brier", "log_loss")
# errors and losses: a decrease is an improvement (oe_ratio and the slope aim at 1: neither way)
LOWER_IS_BETTER = ("ece", "ece_debiased", "mce", "brier", "log_loss", "normalized_entropy")


# ---------------------------------------------------------------- validation

def check_labels_probabilities(y: Any, p: Any, *, y_name: str = "y",
                               p_name: str = "p") -> tuple[np.ndarray, np.ndarray]:
    """Validate binary labels and probabilities; return them as float64 arrays.

    Raises ``DataValidationError`` naming the parameter, the count and an example for:
    empty input, length mismatch, non-numeric values, labels not in {0, 1},
    probabilities that are NaN or outside [0, 1].
    """
    y_arr, p_arr = np.asarray(y), np.asarray(p)
    for name, arr in ((y_name, y_arr), (p_name, p_arr)):
        if arr.ndim != 1:
            raise DataValidationError(f"{name}: expected a 1-D array, got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise DataValidationError(f"{name}: expected numbers, got dtype {arr.dtype} "
                                      f"({describe_examples(arr)})")
    if y_arr.shape[0] != p_arr.shape[0]:
        raise DataValidationError(f"{y_name} and {p_name}: length mismatch, {y_arr.shape[0]} labels "
                                  f"and {p_arr.shape[0]} probabilities")
    if y_arr.shape[0] == 0:
        raise DataValidationError(f"{y_name}, {p_name}: empty input (0 rows)")
    y_f, p_f = y_arr.astype(np.float64), p_arr.astype(np.float64)
    bad_y = (y_f != 0) & (y_f != 1)
    if bad_y.any():
        raise DataValidationError(f"{y_name}: {int(bad_y.sum())} labels are not 0 or 1 "
                                  f"({describe_examples(y_arr[bad_y])})")
    bad_p = ~((p_f >= 0) & (p_f <= 1))
    if bad_p.any():
        raise DataValidationError(f"{p_name}: {int(bad_p.sum())} probabilities are NaN or outside [0, 1] "
                                  f"({describe_examples(p_arr[bad_p])})")
    return y_f, p_f


def check_sample_weight(sample_weight: Any, n_rows: int, *, strategy: str | None = None) -> np.ndarray | None:
    """Validate optional row weights (finite, >= 0, positive total); None means all 1.

    Weighted quantile binning is refused: equal-mass bins of weighted rows have no
    single standard definition, and the harness never picks one silently.
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise DataValidationError(f"sample_weight: expected shape ({n_rows},), got {w.shape}")
    if w.dtype.kind not in "biuf":
        raise DataValidationError(f"sample_weight: expected numbers, got dtype {w.dtype}")
    w = w.astype(np.float64)
    bad = ~(np.isfinite(w) & (w >= 0))
    if bad.any():
        raise DataValidationError(f"sample_weight: {int(bad.sum())} weights are negative, NaN or infinite "
                                  f"({describe_examples(np.asarray(sample_weight)[bad])})")
    if w.sum() <= 0:
        raise DataValidationError("sample_weight: the weights sum to 0")
    if strategy == "quantile":
        raise DataValidationError("sample_weight: not supported with strategy='quantile' "
                                  "(use 'uniform' bins with weights)")
    return w


def _mean(values: np.ndarray, w: np.ndarray | None) -> float:
    return float(values.mean() if w is None else np.sum(w * values) / np.sum(w))


def _check_eps(eps: float) -> None:
    check_number(eps, name="eps", low=0.0, high=0.5, high_open=True)


def _check_norm(norm: str) -> None:
    check_choice(norm, NORMS, name="norm")


# ------------------------------------------------------------------- kernels
# Kernels take clean arrays and group codes and return one value per group.

def _ece_from_sums(count: np.ndarray, sum_p: np.ndarray, sum_y: np.ndarray, norm: str) -> np.ndarray:
    """ECE per row of ``(n_groups, n_bins)`` bin sums; empty bins weigh nothing."""
    n = count.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gap = np.abs(sum_p - sum_y) / count  # |mean p - mean y| per bin; NaN when empty
    if norm == "l1":
        return np.abs(sum_p - sum_y).sum(axis=-1) / n
    if norm == "l2":
        return np.sqrt(np.where(count > 0, count * gap**2, 0.0).sum(axis=-1) / n)
    return np.where(count > 0, gap, -np.inf).max(axis=-1)


def _squared_error_and_bias(count: np.ndarray, gap: np.ndarray, sum_y: np.ndarray,
                            total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Plug-in squared l2 calibration error over the bins with n_b >= 2 rows and its bias
    estimate, from per-bin sums (vectorised over leading axes):
    ``sum_b gap_b^2 / n_b / total`` and ``sum_b Y_b (n_b - Y_b) / (n_b (n_b - 1)) / total``
    with n_b the bin's (weighted) row count, gap_b = sum (p - y), Y_b = sum y (see
    :func:`debiased_calibration_error`)."""
    keep = count >= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        squared = np.where(keep, gap * gap / count, 0.0).sum(axis=-1) / total
        bias = np.where(keep, sum_y * (count - sum_y) / (count * (count - 1.0)), 0.0).sum(axis=-1) / total
    return squared, bias


def _debiased_squared_from_sums(count: np.ndarray, gap: np.ndarray, sum_y: np.ndarray,
                                total: np.ndarray) -> np.ndarray:
    """Debiased squared l2 calibration error from per-bin sums (vectorised)."""
    squared, bias = _squared_error_and_bias(count, gap, sum_y, total)
    return squared - bias


def _log_loss_rows(y: np.ndarray, p: np.ndarray, eps: float) -> np.ndarray:
    q = np.clip(p, eps, 1 - eps)
    # xlogy keeps 0 * log(0) = 0 when eps = 0 and the outcome was predicted with certainty
    return -(special.xlogy(y, q) + special.xlogy(1 - y, 1 - q))


def _binary_entropy(rate: np.ndarray) -> np.ndarray:
    return -(special.xlogy(rate, rate) + special.xlogy(1 - rate, 1 - rate))


def _logistic_fit(y: np.ndarray, x: np.ndarray, groups: np.ndarray, n_groups: int, *,
                  weights: np.ndarray | None = None, max_iter: int = 100,
                  tol: float = 1e-12) -> tuple[np.ndarray, ...]:
    """Maximum-likelihood (intercept, slope) of ``logit P(y=1) = a + b x`` per group,
    and their standard errors from the observed information at the MLE.

    Newton-Raphson on the concave log-likelihood, all groups at once (2 x 2 systems in
    closed form), with step halving per group so the likelihood never decreases.
    Groups where the MLE does not exist (separated classes, which includes one class
    only and constant x) get NaN. ``weights`` multiply each row's log-likelihood.
    """
    wt = np.ones(len(y)) if weights is None else weights

    def bsum(w: np.ndarray) -> np.ndarray:
        return np.bincount(groups, weights=wt * w, minlength=n_groups)

    def loglik(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        eta = a[groups] + b[groups] * x
        return bsum(y * eta - np.logaddexp(0.0, eta))

    # In one dimension the MLE exists iff the x ranges of the two classes overlap
    # (no complete or quasi-complete separation); that also rules out one class only
    # and constant x.
    lo_x, hi_x = np.full((2, n_groups), np.inf), np.full((2, n_groups), -np.inf)
    for label in (0, 1):
        rows = (y == label) & (wt > 0)
        np.minimum.at(lo_x[label], groups[rows], x[rows])
        np.maximum.at(hi_x[label], groups[rows], x[rows])
    active = (hi_x[0] > lo_x[1]) & (hi_x[1] > lo_x[0])
    a, b = np.zeros(n_groups), np.ones(n_groups)  # start at "calibrated"
    converged = ~active
    ll = loglik(a, b)
    for _ in range(max_iter):
        eta = a[groups] + b[groups] * x
        mu = special.expit(eta)
        w, r = mu * (1 - mu), y - mu
        ga, gb = bsum(r), bsum(r * x)
        haa, hab, hbb = bsum(w), bsum(w * x), bsum(w * x * x)
        det = haa * hbb - hab**2
        todo = ~converged & (det > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            da = np.where(todo, (hbb * ga - hab * gb) / det, 0.0)
            db = np.where(todo, (haa * gb - hab * ga) / det, 0.0)
        step = np.ones(n_groups)
        for _ in range(60):
            new_ll = loglik(a + step * da, b + step * db)
            worse = todo & (new_ll < ll - 1e-13 * np.abs(ll))
            if not worse.any():
                break
            step[worse] /= 2
        moved = np.maximum(np.abs(step * da), np.abs(step * db)) / (1 + np.abs(b))
        # converged: a negligible step, or (with rounding noise in sums of many rows) a
        # small step that no longer changes the likelihood
        flat = (np.abs(new_ll - ll) <= 1e-14 * np.abs(ll)) & (moved <= 1e-7)
        a, b, ll = a + step * da, b + step * db, new_ll
        done = todo & ((moved <= tol) | flat)
        converged |= done | (~converged & (det <= 0))
        if converged.all():
            break
    ok = active & converged & (np.abs(b) < 1e6)
    # Wald: inverse of the information [[sum w, sum w x], [sum w x, sum w x^2]] at the MLE
    # (with row weights: frequency weights, as if each row were repeated)
    mu = special.expit(a[groups] + b[groups] * x)
    w = mu * (1 - mu)
    haa, hab, hbb = bsum(w), bsum(w * x), bsum(w * x * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        det = haa * hbb - hab**2
        se_a, se_b = np.sqrt(hbb / det), np.sqrt(haa / det)
    nan = np.nan
    return (np.where(ok, a, nan), np.where(ok, b, nan), np.where(ok, se_a, nan), np.where(ok, se_b, nan))


# ------------------------------------------------------------ public metrics

def expected_calibration_error(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform",
                               norm: str = "l1", sample_weight: Any = None) -> float:
    """Expected calibration error over bins of the predicted probability.

    Parameters
    ----------
    y : array-like of shape (n,)
        Binary labels (0 or 1).
    p : array-like of shape (n,)
        Predicted probabilities of label 1, in [0, 1].
    n_bins : int, default 15
        Number of bins.
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width bins on [0, 1], or equal-mass bins at the quantiles of ``p``.
        A row falls in bin j when ``edge_j < p <= edge_{j+1}`` (the first bin is closed
        on the left); see :mod:`harness.metrics._binning`.
    norm : {"l1", "l2", "max"}, default "l1"
        How bin gaps are combined; ``"max"`` is the maximum calibration error (MCE).
    sample_weight : array-like of shape (n,), optional
        Row weights (e.g. inverse sampling rates of down-sampled negatives): counts
        and means become weighted; ``uniform`` bins only. Integer weights equal
        repeating the rows.

    Returns
    -------
    float

    Notes
    -----
    With ``n_b`` rows in bin b, mean prediction ``pbar_b`` and observed rate ``obar_b``:

    - l1 (ECE): ``sum_b (n_b / n) |pbar_b - obar_b|``
    - l2: ``sqrt(sum_b (n_b / n) (pbar_b - obar_b)^2)``
    - max (MCE): ``max_b |pbar_b - obar_b|`` over non-empty bins.

    Empty bins contribute nothing (weight 0 in l1/l2, skipped by max). ECE is biased
    upwards in small samples: a perfectly calibrated model scores about
    ``sum_b sqrt(2 n_b p(1-p) / pi) / n`` > 0.

    References: Naeini et al. (2015), see the module docstring.

    Examples
    --------
    >>> from harness.metrics import expected_calibration_error
    >>> expected_calibration_error([0, 1, 1, 1], [0.2, 0.4, 0.6, 0.8], n_bins=2)
    0.25
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    _check_norm(norm)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    count, sum_p, sum_y, _, _ = binned_sums(y_f, p_f, np.zeros(len(y_f), np.int64), 1,
                                            n_bins=n_bins, strategy=strategy, weights=w)
    return float(_ece_from_sums(count, sum_p, sum_y, norm)[0])


def debiased_calibration_error(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform",
                               squared: bool = False, sample_weight: Any = None) -> float:
    """Debiased l2 calibration error: the binned squared error less its sampling bias
    (Broecker 2012; Kumar, Liang & Ma 2019).

    Parameters
    ----------
    y, p : array-like of shape (n,)
        Binary labels and predicted probabilities, as in :func:`expected_calibration_error`.
    n_bins, strategy : as in :func:`expected_calibration_error`.
    squared : bool, default False
        Return the debiased squared error itself (unbiased, may be negative) instead of
        its clipped square root.
    sample_weight : array-like of shape (n,), optional
        Frequency weights (a weight of 2 counts as two rows); ``uniform`` bins only.

    Returns
    -------
    float
        ``sqrt(max(CE2, 0))``, or ``CE2`` with ``squared=True``; metric name ``ece_debiased``.

    Notes
    -----
    With n_b rows in bin b, mean prediction pbar_b and observed rate obar_b, the plug-in
    squared error ``sum_b (n_b / n) (pbar_b - obar_b)^2`` (the l2 ECE squared, Murphy's
    reliability) is biased upwards: given the predictions, with pi_i the true
    probability of row i and pi_b their mean in bin b,

        E[(pbar_b - obar_b)^2] = (pbar_b - pi_b)^2 + Var(obar_b),
        Var(obar_b) = sum_{i in b} pi_i (1 - pi_i) / n_b^2.

    Subtracting the bin's variance estimate obar_b (1 - obar_b) / (n_b - 1) gives

        CE2 = sum_{b: n_b >= 2} (n_b / n) [(pbar_b - obar_b)^2 - obar_b (1 - obar_b) / (n_b - 1)],

    unbiased for the squared error ``sum_b (n_b / n) (pbar_b - pi_b)^2`` when the true
    probability is constant within each bin; otherwise it subtracts s_b^2 / (n_b - 1)
    too much per bin (s_b^2 the within-bin variance of pi_i), a small conservative
    bias. Bins with fewer than 2 rows contribute 0, as in the reference implementation
    (``calibration.get_calibration_error(p=2, debias=True)``). For a calibrated model
    the plug-in l2 ECE is about ``sqrt(sum_b obar_b (1 - obar_b) / n)``; CE2 is centred
    on 0 instead, so its bootstrap interval (from the same sums: see
    :func:`harness.metrics.calibration_stats.calibration_statistics`) surrounds the
    estimate rather than starting at it. The square root of max(CE2, 0) keeps a small
    upward bias near 0 (Jensen), far smaller than the plug-in's.

    References
    ----------
    Broecker, J. (2012). Estimating reliability and resolution of probability forecasts
    through decomposition of the empirical score. *Climate Dynamics* 39, 655-667.
    Kumar, A., Liang, P. & Ma, T. (2019). Verified uncertainty calibration. *NeurIPS 32*,
    sec. 5 (the debiased estimator).

    Examples
    --------
    Two bins of 4 rows; bin 1: pbar = 0.2, obar = 0.25; bin 2: pbar = 0.7, obar = 0.5.
    CE2 = (4/8) (0.0025 - 0.1875/3) + (4/8) (0.04 - 0.25/3):

    >>> from harness.metrics.calibration import debiased_calibration_error

    >>> y = [0, 0, 0, 1, 1, 0, 1, 0]
    >>> p = [0.2, 0.2, 0.2, 0.2, 0.7, 0.7, 0.7, 0.7]
    >>> round(debiased_calibration_error(y, p, n_bins=2, squared=True), 6)
    -0.051667
    >>> debiased_calibration_error(y, p, n_bins=2)
    0.0
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    count, sum_p, sum_y, _, _ = binned_sums(y_f, p_f, np.zeros(len(y_f), np.int64), 1,
                                            n_bins=n_bins, strategy=strategy, weights=w)
    ce2 = float(_debiased_squared_from_sums(count, sum_p - sum_y, sum_y, count.sum(axis=-1))[0])
    return ce2 if squared else math.sqrt(max(ce2, 0.0))


def brier_score_per_row(y: Any, p: Any) -> np.ndarray:
    """Per-row Brier contributions ``(p_i - y_i)^2``; their mean is :func:`brier_score`.

    For paired comparisons of two models scored on the same rows.
    """
    y_f, p_f = check_labels_probabilities(y, p)
    return (p_f - y_f) ** 2


def brier_score(y: Any, p: Any, *, sample_weight: Any = None) -> float:
    """Brier score: mean squared error of the probabilities, ``(1/n) sum_i (p_i - y_i)^2``
    (weighted mean with ``sample_weight``).

    Equals scikit-learn's ``brier_score_loss``. Lower is better; 0 is perfect.

    Examples
    --------
    >>> from harness.metrics import brier_score
    >>> round(brier_score([0, 1], [0.2, 0.6]), 12)
    0.1
    """
    rows = brier_score_per_row(y, p)
    return _mean(rows, check_sample_weight(sample_weight, len(rows)))


@dataclass(frozen=True)
class BrierDecomposition:
    """Murphy's partition of the Brier score over bins, with the within-bin terms.

    ``brier == reliability - resolution + uncertainty + within_bin_variance +
    within_bin_covariance`` holds exactly (up to rounding). The two within-bin terms
    are 0 when predictions are constant within every bin; their sum is ``remainder``.
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float
    n_bins: int
    strategy: str

    @property
    def remainder(self) -> float:
        """``brier - (reliability - resolution + uncertainty)``: the within-bin part."""
        return self.within_bin_variance + self.within_bin_covariance


def brier_decomposition(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform",
                        sample_weight: Any = None) -> BrierDecomposition:
    """Decompose the Brier score into reliability, resolution and uncertainty.

    Notes
    -----
    With bins as in :func:`expected_calibration_error`, base rate ``obar``:

    - reliability ``REL = (1/n) sum_b n_b (pbar_b - obar_b)^2`` (lower is better)
    - resolution ``RES = (1/n) sum_b n_b (obar_b - obar)^2`` (higher is better)
    - uncertainty ``UNC = obar (1 - obar)``
    - within-bin variance ``WBV = (1/n) sum_i (p_i - pbar_{b(i)})^2``
    - within-bin covariance ``WBC = -(2/n) sum_i (p_i - pbar_{b(i)}) (y_i - obar_{b(i)})``

    and ``Brier = REL - RES + UNC + WBV + WBC`` exactly (Murphy 1973; Stephenson et al.
    2008). Murphy's three-term identity holds exactly when p is constant within bins.

    Examples
    --------
    >>> from harness.metrics import brier_decomposition
    >>> d = brier_decomposition([0, 1, 1, 1], [0.25, 0.25, 0.75, 0.75], n_bins=2)
    >>> round(d.reliability, 4), round(d.resolution, 4), d.uncertainty
    (0.0625, 0.0625, 0.1875)
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    count, sum_p, sum_y, flat, _ = binned_sums(y_f, p_f, np.zeros(len(y_f), np.int64), 1,
                                               n_bins=n_bins, strategy=strategy, weights=w)
    count, sum_p, sum_y = count[0], sum_p[0], sum_y[0]
    n = count.sum()  # rows, or the total weight
    with np.errstate(invalid="ignore", divide="ignore"):
        pbar, obar_b = np.where(count > 0, sum_p / count, 0.0), np.where(count > 0, sum_y / count, 0.0)
    obar = sum_y.sum() / n
    dp, dy = p_f - pbar[flat], y_f - obar_b[flat]
    return BrierDecomposition(
        brier=_mean((p_f - y_f) ** 2, w),
        reliability=float(np.sum(count * (pbar - obar_b) ** 2) / n),
        resolution=float(np.sum(count * (obar_b - obar) ** 2) / n),
        uncertainty=float(obar * (1 - obar)),
        within_bin_variance=_mean(dp**2, w),
        within_bin_covariance=-2 * _mean(dp * dy, w),
        n_bins=n_bins, strategy=strategy,
    )


def log_loss_per_row(y: Any, p: Any, *, eps: float = DEFAULT_EPS) -> np.ndarray:
    """Per-row log loss ``-(y log q + (1 - y) log(1 - q))``, ``q = clip(p, eps, 1 - eps)``.

    Their mean is :func:`log_loss`; for paired comparisons on the same rows.
    """
    y_f, p_f = check_labels_probabilities(y, p)
    _check_eps(eps)
    return _log_loss_rows(y_f, p_f, eps)


def log_loss(y: Any, p: Any, *, eps: float = DEFAULT_EPS, sample_weight: Any = None) -> float:
    """Mean log loss (cross-entropy, natural log) with probabilities clipped to [eps, 1-eps].

    ``LL = -(1/n) sum_i [y_i log q_i + (1 - y_i) log(1 - q_i)]``, ``q = clip(p, eps, 1-eps)``.
    Clipping keeps a confident mistake (p = 0 for a positive) finite: it costs
    ``-log(eps)`` (34.5 nats at the default 1e-15). ``eps=0`` disables clipping and can
    return ``inf``. ``sample_weight`` gives the weighted mean.

    Examples
    --------
    >>> from harness.metrics import log_loss
    >>> round(log_loss([1, 0], [0.5, 0.5]), 6)
    0.693147
    """
    rows = log_loss_per_row(y, p, eps=eps)
    return _mean(rows, check_sample_weight(sample_weight, len(rows)))


def normalized_entropy(y: Any, p: Any, *, eps: float = DEFAULT_EPS, sample_weight: Any = None) -> float:
    """Log loss divided by the entropy of the base rate (He et al. 2014).

    ``NE = LL / H(obar)``, ``H(r) = -r log r - (1 - r) log(1 - r)``. Predicting the base
    rate for every row gives NE = 1; lower is better. NaN when all labels are equal
    (H = 0: there is nothing to predict). With ``sample_weight``, both the log loss and
    the base rate are weighted.

    Examples
    --------
    >>> from harness.metrics import normalized_entropy
    >>> normalized_entropy([0, 1], [0.5, 0.5])
    1.0
    """
    y_f, p_f = check_labels_probabilities(y, p)
    _check_eps(eps)
    w = check_sample_weight(sample_weight, len(y_f))
    h = float(_binary_entropy(np.array(_mean(y_f, w))))
    return _mean(_log_loss_rows(y_f, p_f, eps), w) / h if h > 0 else float("nan")


def observed_expected_ratio(y: Any, p: Any, *, sample_weight: Any = None) -> float:
    """Observed over expected positives, ``sum_i y_i / sum_i p_i`` (``sum w y / sum w p``
    with ``sample_weight``).

    1 when the model is calibrated in the large; above 1 it under-predicts. NaN when
    every prediction is 0 (nothing is expected).

    Examples
    --------
    >>> from harness.metrics import observed_expected_ratio
    >>> observed_expected_ratio([1, 0, 1, 0], [0.25, 0.25, 0.25, 0.25])
    2.0
    """
    y_f, p_f = check_labels_probabilities(y, p)
    w = check_sample_weight(sample_weight, len(y_f))
    w = np.ones(len(y_f)) if w is None else w
    expected = np.sum(w * p_f)
    return float(np.sum(w * y_f) / expected) if expected > 0 else float("nan")


@dataclass(frozen=True)
class CalibrationFit:
    """Logistic recalibration ``logit P(y = 1) = intercept + slope * logit(p)``, with
    Wald standard errors (square roots of the diagonal of the inverse information)."""

    slope: float
    intercept: float
    slope_se: float = float("nan")
    intercept_se: float = float("nan")

    def interval(self, which: str = "slope", *, confidence: float = 0.95) -> tuple[float, float]:
        """Wald interval ``estimate -+ z_{1-alpha/2} se`` of ``"slope"`` or ``"intercept"``."""
        check_choice(which, ("slope", "intercept"), name="which")
        confidence = check_confidence(confidence)
        est, se = getattr(self, which), getattr(self, f"{which}_se")
        z = float(special.ndtri(0.5 + confidence / 2))
        return est - z * se, est + z * se


def calibration_slope_intercept(y: Any, p: Any, *, eps: float = DEFAULT_EPS,
                                sample_weight: Any = None) -> CalibrationFit:
    """Calibration slope and intercept by logistic recalibration (Cox 1958).

    Fits ``logit P(y = 1 | p) = a + b logit(q)``, ``q = clip(p, eps, 1 - eps)``, by exact
    maximum likelihood (Newton-Raphson with step halving). A calibrated model has
    ``b = 1, a = 0``; ``b < 1`` means over-confident predictions (too extreme),
    ``b > 1`` under-confident ones; ``a`` shifts the overall level.

    ``sample_weight`` weights each row's likelihood (frequency weights: the standard
    errors treat a weight of 2 as two rows). Returns NaN for both when the MLE does
    not exist: the classes are separated by p
    (every positive scored at least as high as every negative, or the reverse), which
    includes one class only and constant p.

    Examples
    --------
    >>> from harness.metrics import calibration_slope_intercept
    >>> fit = calibration_slope_intercept([0, 1, 0, 1, 1, 0], [0.2, 0.3, 0.5, 0.6, 0.7, 0.4])
    >>> fit.slope > 0
    True
    """
    y_f, p_f = check_labels_probabilities(y, p)
    _check_eps(eps)
    w = check_sample_weight(sample_weight, len(y_f))
    x = special.logit(np.clip(p_f, eps, 1 - eps))
    a, b, se_a, se_b = _logistic_fit(y_f, x, np.zeros(len(y_f), np.int64), 1, weights=w)
    return CalibrationFit(slope=float(b[0]), intercept=float(a[0]), slope_se=float(se_b[0]),
                          intercept_se=float(se_a[0]))


def wilson_interval(successes: Any, n: Any, *, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for a binomial proportion, vectorised (Wilson 1927).

    ``(phat + z^2/(2n) -+ z sqrt(phat (1 - phat)/n + z^2/(4 n^2))) / (1 + z^2/n)``,
    ``z = Phi^{-1}(1 - alpha/2)``. NaN where ``n == 0``.

    Examples
    --------
    >>> from harness.metrics import wilson_interval
    >>> lo, hi = wilson_interval(0, 10)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0, 0.2775)
    """
    confidence = check_confidence(confidence)
    k, m = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    z = special.ndtri(0.5 + confidence / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        phat = k / m
        denom = 1 + z**2 / m
        centre = (phat + z**2 / (2 * m)) / denom
        half = z * np.sqrt(phat * (1 - phat) / m + z**2 / (4 * m**2)) / denom
    # the interval holds phat exactly: at phat = 0 or 1, centre -+ half is phat only up to
    # rounding (5.6e-17 above 0 at k = 0, n = 7), which would put the estimate outside it
    low = np.minimum(np.clip(centre - half, 0.0, 1.0), phat)
    high = np.maximum(np.clip(centre + half, 0.0, 1.0), phat)
    return low, high


def reliability_curve(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform",
                      confidence: float = 0.95, sample_weight: Any = None) -> pd.DataFrame:
    """Per-bin mean prediction, observed rate, count and Wilson interval.

    Returns
    -------
    DataFrame with one row per bin (empty bins included, with count 0 and NaN rates):
    ``bin``, ``lower``, ``upper`` (edges), ``count`` (rows), ``weight`` (sum of
    ``sample_weight``; = count without weights), ``mean_predicted``, ``observed_rate``
    (weighted means), ``ci_low``, ``ci_high`` (Wilson interval of the observed rate, at
    Kish's effective size ``(sum w)^2 / sum w^2`` with weights). Without weights the
    non-empty rows' ``observed_rate`` / ``mean_predicted`` equal scikit-learn's
    ``calibration_curve(y, p, n_bins=n_bins, strategy=strategy)``.
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    weight, sum_p, sum_y, flat, edges = binned_sums(y_f, p_f, np.zeros(len(y_f), np.int64), 1,
                                                    n_bins=n_bins, strategy=strategy, weights=w)
    weight, sum_p, sum_y, edges = weight[0], sum_p[0], sum_y[0], edges[0]
    count = np.bincount(flat, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        n_eff = count if w is None else weight**2 / np.bincount(flat, weights=w**2, minlength=n_bins)
        rate = sum_y / weight
        lo, hi = wilson_interval(rate * n_eff, n_eff, confidence=confidence)
        return pd.DataFrame({
            "bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:],
            "count": count.astype(np.int64), "weight": weight, "mean_predicted": sum_p / weight,
            "observed_rate": rate, "ci_low": lo, "ci_high": hi,
        })


def calibration_by_segment(y: Any, p: Any, segments: Any, *, n_bins: int = 15,
                           strategy: str = "uniform", eps: float = DEFAULT_EPS,
                           sample_weight: Any = None) -> pd.DataFrame:
    """Every calibration metric per segment, in one vectorised pass.

    Parameters
    ----------
    y, p : array-like of shape (n,)
        Labels and probabilities, as in :func:`expected_calibration_error`.
    segments : array-like of shape (n,)
        A segment label per row (user cohort, surface, popularity bucket...). Missing
        values are an error.
    n_bins, strategy : as in :func:`expected_calibration_error`; quantile edges are
        computed within each segment.
    eps : float
        Clipping of log loss and of ``logit(p)`` for the slope.
    sample_weight : array-like of shape (n,), optional
        Row weights, as in the scalar functions (uniform bins only).

    Returns
    -------
    DataFrame indexed by segment (sorted) with columns ``n`` (rows), ``weight`` (sum of
    weights; = n without weights), ``positives`` (rows with y = 1),
    ``base_rate``, ``mean_predicted``, ``ece``, ``ece_debiased`` (see
    :func:`debiased_calibration_error`), ``mce``, ``brier``, ``reliability``,
    ``resolution``, ``uncertainty`` (see :func:`brier_decomposition`), ``log_loss``,
    ``normalized_entropy``, ``oe_ratio``, ``calibration_slope``,
    ``calibration_intercept`` and the Wald standard errors ``calibration_slope_se``,
    ``calibration_intercept_se``. Each value equals the corresponding scalar function
    on that segment's rows.
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    _check_eps(eps)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    groups, labels = group_codes(segments, len(y_f))
    return _metrics_table(y_f, p_f, groups, len(labels), n_bins=n_bins, strategy=strategy,
                          eps=eps, weights=w).set_axis(pd.Index(labels, name="segment"))


def calibration_summary(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform",
                        eps: float = DEFAULT_EPS, sample_weight: Any = None) -> dict[str, float]:
    """All metrics of :func:`calibration_by_segment` for the whole input, as a dict."""
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    _check_eps(eps)
    w = check_sample_weight(sample_weight, len(y_f), strategy=strategy)
    table = _metrics_table(y_f, p_f, np.zeros(len(y_f), np.int64), 1, n_bins=n_bins,
                           strategy=strategy, eps=eps, weights=w)
    return {k: float(v) for k, v in table.iloc[0].items()}


def _metrics_table(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_groups: int, *, n_bins: int,
                   strategy: str, eps: float, weights: np.ndarray | None = None) -> pd.DataFrame:
    count, sum_p, sum_y, _, _ = binned_sums(y, p, groups, n_groups, n_bins=n_bins, strategy=strategy,
                                            weights=weights)
    wt = np.ones(len(y)) if weights is None else weights
    n = count.sum(axis=1)  # rows, or the total weight
    pos, expected = sum_y.sum(axis=1), sum_p.sum(axis=1)
    ll = np.bincount(groups, weights=wt * _log_loss_rows(y, p, eps), minlength=n_groups) / n
    entropy = _binary_entropy(pos / n)
    with np.errstate(invalid="ignore", divide="ignore"):  # Murphy's terms; empty bins add nothing
        reliability = np.where(count > 0, (sum_p - sum_y) ** 2 / count, 0.0).sum(axis=1) / n
        resolution = np.where(count > 0, count * (sum_y / count - (pos / n)[:, None]) ** 2, 0.0).sum(axis=1) / n
    intercept, slope, intercept_se, slope_se = _logistic_fit(y, special.logit(np.clip(p, eps, 1 - eps)),
                                                             groups, n_groups, weights=weights)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame({
            "n": np.bincount(groups, minlength=n_groups), "weight": n,
            "positives": np.bincount(groups, weights=y, minlength=n_groups).astype(np.int64), "base_rate": pos / n,
            "mean_predicted": expected / n,
            "ece": _ece_from_sums(count, sum_p, sum_y, "l1"),
            "ece_debiased": np.sqrt(np.maximum(_debiased_squared_from_sums(count, sum_p - sum_y, sum_y, n), 0.0)),
            "mce": _ece_from_sums(count, sum_p, sum_y, "max"),
            "brier": np.bincount(groups, weights=wt * (p - y) ** 2, minlength=n_groups) / n,
            "reliability": reliability, "resolution": resolution, "uncertainty": (pos / n) * (1 - pos / n),
            "log_loss": ll,
            "normalized_entropy": np.where(entropy > 0, ll / entropy, np.nan),
            "oe_ratio": np.where(expected > 0, pos / expected, np.nan),
            "calibration_slope": slope, "calibration_intercept": intercept,
            "calibration_slope_se": slope_se, "calibration_intercept_se": intercept_se,
        })


def evaluate_calibration(y: Any, p: Any, metrics: Sequence[str], *, n_bins: int = 15,
                         strategy: str = "uniform", eps: float = DEFAULT_EPS,
                         sample_weight: Any = None) -> dict[str, float]:
    """The named metrics (keys of ``CALIBRATION_METRICS``) as a dict, in the given order."""
    for m in metrics:
        check_choice(m, CALIBRATION_METRICS, name="metrics")
    summary = calibration_summary(y, p, n_bins=n_bins, strategy=strategy, eps=eps, sample_weight=sample_weight)
    return {m: summary[m] for m in metrics}
