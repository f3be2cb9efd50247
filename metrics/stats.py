"""Statistics for paired comparisons: intervals, one-sided tests, multiplicity control.

Every function takes per-unit values (one row per query, round or user) so that the
candidate and the baseline are compared on the SAME units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from harness.errors import DataValidationError

# A bootstrap chunk holds at most this many resampled indices (64 MiB of int64).
_CHUNK_CELLS = 8_000_000


def _as_2d(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DataValidationError(f"{name}: need at least 2 units, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataValidationError(f"{name}: {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    return arr


def bootstrap_mean_replicates(
    values: np.ndarray, *, n_resamples: int = 2000, seed: int = 0
) -> np.ndarray:
    """Means of ``values`` (n_units, n_metrics) over ``n_resamples`` bootstrap resamples.

    Units are resampled with replacement (the same resample for every metric, which
    keeps their correlation). Resampling counts come from one ``bincount`` per chunk
    and the means from a matrix product, so memory stays bounded for any n.

    Returns
    -------
    ndarray of shape (n_resamples, n_metrics)
    """
    arr = _as_2d(values, "values")
    n = arr.shape[0]
    rng = np.random.default_rng(seed)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // n))
    out = np.empty((n_resamples, arr.shape[1]))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b] = counts @ arr / n
    return out


@dataclass(frozen=True)
class DeltaInference:
    """Inference on the mean of paired deltas: estimate, interval and one-sided p-values.

    ``p_greater(m)`` is the p-value of H1: delta > m; ``p_less(m)`` of H1: delta < m.
    """

    estimate: float
    ci_low: float
    ci_high: float
    method: str
    std_error: float
    n_units: int
    _replicates: np.ndarray | None = None

    def p_greater(self, margin: float) -> float:
        if self._replicates is not None:
            # percentile-interval duality: the smallest alpha at which the one-sided
            # lower bound exceeds the margin
            return float((1 + np.sum(self._replicates <= margin)) / (1 + self._replicates.size))
        return _t_p(self.estimate - margin, self.std_error, self.n_units, "greater")

    def p_less(self, margin: float) -> float:
        if self._replicates is not None:
            return float((1 + np.sum(self._replicates >= margin)) / (1 + self._replicates.size))
        return _t_p(self.estimate - margin, self.std_error, self.n_units, "less")


def _t_p(diff: float, se: float, n: int, alternative: str) -> float:
    if se == 0:
        if diff == 0:
            return 1.0
        return 0.0 if (diff > 0) == (alternative == "greater") else 1.0
    t = diff / se
    return float(sps.t.sf(t, n - 1) if alternative == "greater" else sps.t.cdf(t, n - 1))


def infer_paired_deltas(
    deltas: np.ndarray,
    *,
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[DeltaInference]:
    """Interval and tests for the mean of each column of paired deltas.

    Parameters
    ----------
    deltas : ndarray of shape (n_units,) or (n_units, n_metrics)
        Candidate minus baseline, per unit.
    method : {"bootstrap", "t_test"}
        Percentile bootstrap over units, or Student's t (the paired t-test).
    confidence : float
        Two-sided level of the interval.

    Notes
    -----
    t: mean(d) -+ t_{1-a/2, n-1} * sd(d) / sqrt(n). Bootstrap: the a/2 and 1-a/2
    quantiles of the resampled means.
    """
    arr = _as_2d(deltas, "deltas")
    n, m = arr.shape
    mean = arr.mean(axis=0)
    se = arr.std(axis=0, ddof=1) / np.sqrt(n)
    alpha = 1 - confidence
    if method == "bootstrap":
        reps = bootstrap_mean_replicates(arr, n_resamples=n_resamples, seed=seed)
        lo, hi = np.quantile(reps, [alpha / 2, 1 - alpha / 2], axis=0)
        return [DeltaInference(float(mean[j]), float(lo[j]), float(hi[j]), method, float(se[j]), n,
                               reps[:, j].copy()) for j in range(m)]
    if method == "t_test":
        q = sps.t.ppf(1 - alpha / 2, n - 1)
        return [DeltaInference(float(mean[j]), float(mean[j] - q * se[j]), float(mean[j] + q * se[j]),
                               method, float(se[j]), n) for j in range(m)]
    raise DataValidationError(f"method: unknown value {method!r}; use 'bootstrap' or 't_test'")


def mean_confidence_interval(values: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of per-unit values: mean -+ t * sd / sqrt(n)."""
    arr = np.asarray(values, dtype=np.float64)
    n = arr.size
    if n < 2:
        return float("nan"), float("nan")
    mean = arr.mean()
    half = sps.t.ppf(0.5 + confidence / 2, n - 1) * arr.std(ddof=1) / np.sqrt(n)
    return float(mean - half), float(mean + half)


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the sorted p-values.
    """
    p = np.asarray(p_values, dtype=np.float64)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


def bh_adjust(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (false discovery rate control)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    return sps.false_discovery_control(p, method="bh")


def adjust_p_values(p_values: np.ndarray, correction: str) -> np.ndarray:
    """Apply ``"holm"``, ``"bh"`` or ``"none"``."""
    if correction == "holm":
        return holm_adjust(p_values)
    if correction == "bh":
        return bh_adjust(p_values)
    if correction == "none":
        return np.asarray(p_values, dtype=np.float64)
    raise DataValidationError(f"correction: unknown value {correction!r}; use 'holm', 'bh' or 'none'")


def minimum_detectable_effect(std_error: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true delta a one-sided test at ``alpha`` detects with ``power``:
    (z_{1-alpha} + z_{power}) * SE."""
    return float((sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * std_error)
