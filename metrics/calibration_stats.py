"""Calibration metrics as sum statistics: bootstrap intervals and paired comparisons.

ECE, MCE, Brier, log loss, normalized entropy and the observed/expected ratio are all
functions of column sums of per-row parts (with bin edges fixed at the full sample's).
As :class:`harness.metrics.stats.SumStatistic` objects they share the harness's one
resampling engine: a bootstrap resample with row weights ``w`` replaces each sum ``S``
by ``w @ parts`` and ``n`` by ``sum(w)``, with no loop over resamples or rows, and two
models scored on the same rows are compared by ``harness.inference.paired.compare_models``
with ``statistics=``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from harness.options import check_choice

from ._binning import binned_sums, check_bin_options
from ._names import VALUE_RANGES
from .calibration import DEFAULT_EPS, _binary_entropy, _check_eps, _check_norm, _log_loss_rows, \
    _squared_error_and_bias, check_labels_probabilities
from .stats import SumStatistic, bootstrap_statistics


@dataclass(frozen=True)
class BootstrapInterval:
    """A point estimate, its percentile bootstrap interval and the replicates."""

    estimate: float
    ci_low: float
    ci_high: float
    replicates: np.ndarray


def ece_bootstrap(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform", norm: str = "l1",
                  n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> BootstrapInterval:
    """Percentile bootstrap interval of the ECE (rows resampled with replacement).

    Bin edges are fixed at those of the full sample (for ``quantile``, the interval is
    conditional on the binning). The ECE is a function of per-bin sums of row parts
    (:func:`calibration_statistics`), so each resample costs one weighted sum and no
    loop runs over resamples or rows; resampling weights come from
    :func:`harness.metrics.stats.bootstrap_sums` (multinomial, i.e. exactly a
    resample with replacement, up to ``MULTINOMIAL_MAX_UNITS`` rows; independent
    Poisson(1) weights above). Note ECE's upward bias: the interval of a calibrated
    model does not reach 0.

    Returns
    -------
    BootstrapInterval
        ``estimate`` (ECE of the full sample), ``ci_low``, ``ci_high`` and the
        ``replicates`` (n_resamples,).

    Examples
    --------
    >>> from harness.metrics import ece_bootstrap
    >>> iv = ece_bootstrap([0, 1, 1, 1], [0.2, 0.4, 0.6, 0.8], n_bins=2, n_resamples=200, seed=0)
    >>> round(iv.estimate, 4)  # bins (0, .5], (.5, 1]: |0.3 - 0.5| * 2/4 + |0.7 - 1| * 2/4
    0.25
    >>> iv.replicates.shape
    (200,)
    """
    _check_norm(norm)
    name = {"l1": "ece", "l2": "_ece_l2", "max": "mce"}[norm]
    stat = calibration_statistics(y, p, [name], n_bins=n_bins, strategy=strategy)[name]
    inf = bootstrap_statistics([stat], confidence=confidence, n_resamples=n_resamples, seed=seed)[0]
    return BootstrapInterval(inf.estimate, inf.ci_low, inf.ci_high, inf.replicates)


def _abs_sum_over_bins(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    return np.abs(sums).sum(axis=-1) / total


def _max_gap_over_bins(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    half = sums.shape[-1] // 2
    count, gap = sums[..., :half], np.abs(sums[..., half:])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, gap / count, -np.inf).max(axis=-1)


def _root_mean_square_gap(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    half = sums.shape[-1] // 2
    count, gap = sums[..., :half], sums[..., half:]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(count > 0, gap**2 / count, 0.0).sum(axis=-1) / total)


def _debiased_l2(sums: np.ndarray, total: np.ndarray, times: float = 1.0) -> np.ndarray:
    """sqrt(max(0, CE2_plugin - times * bias)) from the sums ``[N_b, G_b, Y_b]``."""
    third = sums.shape[-1] // 3
    squared, bias = _squared_error_and_bias(sums[..., :third], sums[..., third:2 * third],
                                            sums[..., 2 * third:], total)
    return np.sqrt(np.maximum(squared - times * bias, 0.0))


def _debiased_l2_resample(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    # the bootstrap world's truth is the plug-in CE2: its resamples correct twice
    return _debiased_l2(sums, total, 2.0)


def _mean_of_first(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    return sums[..., 0] / total


def _ratio(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    return sums[..., 0] / sums[..., 1]


def _normalized_entropy(sums: np.ndarray, total: np.ndarray) -> np.ndarray:
    return (sums[..., 0] / total) / _binary_entropy(sums[..., 1] / total)


# metrics that are functions of column sums of per-row parts (bootstrap and pairing)
STATISTIC_METRICS = ("ece", "ece_debiased", "mce", "brier", "log_loss", "normalized_entropy", "oe_ratio")


def calibration_statistics(y: Any, p: Any, metrics: Sequence[str] = STATISTIC_METRICS, *, n_bins: int = 15,
                           strategy: str = "uniform", eps: float = DEFAULT_EPS) -> dict[str, SumStatistic]:
    """Calibration metrics as sum statistics of per-row parts, for bootstrap intervals and
    paired comparisons (:func:`harness.metrics.stats.bootstrap_statistics`,
    :func:`harness.inference.paired.compare_models` with ``statistics=``).

    With ``e_ib = [row i in bin b]`` (bin edges fixed at the full sample's):

    - ece: parts ``e_ib (p_i - y_i)``; ``sum_b |S_b| / n``
    - ece_debiased: parts ``[e_ib, e_ib (p_i - y_i), e_ib y_i]`` = (N_b, G_b, Y_b);
      ``sqrt(max(0, sum_{b: N_b >= 2} [G_b^2 / N_b - Y_b (N_b - Y_b) / (N_b (N_b - 1))] / n))``
      (:func:`harness.metrics.calibration.debiased_calibration_error`). Its resamples
      subtract the bias estimate twice (``resample_combine``): the plug-in CE2 is the
      truth of the bootstrap world, so ``CE2* - bias*`` would centre on the plug-in;
      ``CE2* - 2 bias*`` centres on the debiased estimate, and the percentile interval
      surrounds it
    - mce: parts ``[e_ib, e_ib (p_i - y_i)]``; ``max_b |S'_b| / S_b`` over non-empty bins
    - brier, log_loss: the per-row values; their mean
    - normalized_entropy: parts ``[ll_i, y_i]``; ``(S_0 / n) / H(S_1 / n)``
    - oe_ratio: parts ``[y_i, p_i]``; ``S_0 / S_1``

    A resample with row weights w replaces S by ``w @ parts`` and n by ``sum(w)``;
    ``value()`` of each equals the corresponding metric function. Each statistic carries
    its metric's range as ``bounds`` (ECE in [0, 1], log loss >= 0, ...), so that its
    intervals stay inside it.

    >>> from harness.metrics import calibration_statistics
    >>> stats = calibration_statistics([0, 1, 1, 1], [0.2, 0.4, 0.6, 0.8], ["brier", "oe_ratio"], n_bins=2)
    >>> round(stats["brier"].value(), 4)  # (0.04 + 0.36 + 0.16 + 0.04) / 4
    0.15
    >>> stats["oe_ratio"].value()  # 3 / 2
    1.5
    """
    y_f, p_f = check_labels_probabilities(y, p)
    check_bin_options(n_bins, strategy)
    _check_eps(eps)
    for m in metrics:
        if m != "_ece_l2":
            check_choice(m, STATISTIC_METRICS, name="metrics")
    n = len(y_f)
    rows = np.arange(n)
    out: dict[str, SumStatistic] = {}
    if {"ece", "ece_debiased", "mce", "_ece_l2"} & set(metrics):
        _, _, _, flat, _ = binned_sums(y_f, p_f, np.zeros(n, np.int64), 1, n_bins=n_bins, strategy=strategy)
        gap = np.zeros((n, n_bins))
        gap[rows, flat] = p_f - y_f
        if "ece" in metrics:
            out["ece"] = _stat(gap, _abs_sum_over_bins, name="ece")
        if {"mce", "_ece_l2", "ece_debiased"} & set(metrics):
            onehot = np.zeros((n, n_bins))
            onehot[rows, flat] = 1.0
            if "ece_debiased" in metrics:
                positives = np.zeros((n, n_bins))
                positives[rows, flat] = y_f
                out["ece_debiased"] = _stat(np.hstack([onehot, gap, positives]), _debiased_l2, name="ece_debiased",
                                            resample=_debiased_l2_resample)
            if "mce" in metrics:
                out["mce"] = _stat(np.hstack([onehot, gap]), _max_gap_over_bins, name="mce")
            if "_ece_l2" in metrics:  # for ece_bootstrap(norm="l2")
                out["_ece_l2"] = _stat(np.hstack([onehot, gap]), _root_mean_square_gap, name="ece_l2")
    if "brier" in metrics:
        out["brier"] = _stat(((p_f - y_f) ** 2)[:, None], _mean_of_first, name="brier")
    if "log_loss" in metrics or "normalized_entropy" in metrics:
        ll = _log_loss_rows(y_f, p_f, eps)
        if "log_loss" in metrics:
            out["log_loss"] = _stat(ll[:, None], _mean_of_first, name="log_loss")
        if "normalized_entropy" in metrics:
            out["normalized_entropy"] = _stat(np.column_stack([ll, y_f]), _normalized_entropy,
                                              name="normalized_entropy")
    if "oe_ratio" in metrics:
        out["oe_ratio"] = _stat(np.column_stack([y_f, p_f]), _ratio, name="oe_ratio")
    return {m: out[m] for m in metrics}


def _stat(parts: np.ndarray, combine: Any, name: str, resample: Any = None) -> SumStatistic:
    """A calibration metric's sum statistic, with the metric's range as its bounds."""
    return SumStatistic(parts, combine, name=name, bounds=VALUE_RANGES["ece" if name == "ece_l2" else name],
                        resample_combine=resample)


def ece_statistic(y: Any, p: Any, *, n_bins: int = 15, strategy: str = "uniform") -> SumStatistic:
    """The (l1) ECE as a sum statistic (see :func:`calibration_statistics`)."""
    return calibration_statistics(y, p, ["ece"], n_bins=n_bins, strategy=strategy)["ece"]
