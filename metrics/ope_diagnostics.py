"""Overlap diagnostics of importance weights, for every off-policy estimate.

An off-policy estimate is only as good as the overlap between the logging policy pi_b
and the evaluation policy pi_e. These numbers say how much of the data really informs
the estimate; ``low_overlap`` (with ``overlap_reason``) is the flag a launch gate reads
to answer INCONCLUSIVE rather than PASS. It is raised by any of:

- a low effective sample size (``low_ess``, Kish 1965);
- a heavy weight tail: the Pareto k-hat of the largest weights above
  min(1 - 1 / log10(n), 0.7) (Vehtari et al. 2024, PSIS);
- a thin action: an action carrying a share of pi_e's estimated mass
  (sum of its rows' weights / n >= ``min_action_mass``) seen on fewer than
  ``min_action_rows`` logged rows, so that its part of the estimate rests on a handful
  of rows;
- a mean weight far from 1: E[w] = 1 - (pi_e mass outside pi_b's support), so a mean
  weight 3 standard errors (and ``mean_weight_tol``) away from 1 means pi_e mass the
  logs never show (an action too rare to have been logged at all);
- pi_e mass outside pi_b's support (``unsupported_mass``, when known).

The sample ESS misses exactly the rare-action case: when the rare action is
under-represented in a sample, its few large weights are absent and the sample ESS
looks healthy (issue 13: flagged in 32% of runs whose population ESS was 70).

References
----------
Kish, L. (1965). *Survey Sampling*. Wiley (effective sample size).
Vehtari, A., Simpson, D., Gelman, A., Yao, Y. & Gabry, J. (2024). Pareto smoothed
importance sampling. *JMLR* 25(72), 1-58 (arXiv:1507.02646, 2015).
Zhang, J. & Stephens, M. A. (2009). A new and efficient estimation method for the
generalized Pareto distribution. *Technometrics* 51(3), 316-325.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import DataValidationError, plain_value
from harness.options import check_integer, check_number, check_probability

from ._ope_inputs import check_propensities

__all__ = ["WeightDiagnostics", "pareto_k_hat", "pareto_k_threshold", "support_deficiency",
           "weight_diagnostics"]


@dataclass(frozen=True)
class WeightDiagnostics:
    """Summary of the importance weights ``w_i = pi_e_i / pscore_i``.

    Attributes
    ----------
    n : int
        Logged rows.
    ess : float
        Effective sample size ``(sum w)^2 / sum w^2`` (Kish 1965); 0 if every w is 0.
    ess_ratio : float
        ``ess / n``.
    max_weight, p999_weight, mean_weight : float
        Largest weight, its 99.9th percentile (linear interpolation), and the mean (its
        expectation is 1 minus the pi_e mass outside pi_b's support).
    top1pct_share : float
        Share of ``sum w`` carried by the ``ceil(n / 100)`` largest weights.
    clipped_fraction : float
        Fraction of rows whose weight exceeds the estimator's clipping threshold.
    n_support_deficient : int or None
        Rows where pi_e puts mass on actions pi_b never takes (None when unknown).
    unsupported_mass : float or None
        Mean pi_e mass outside pi_b's support (None when unknown).
    low_ess : bool
        ``ess < min_ess`` or ``ess_ratio < min_ess_ratio``: the gate must not PASS.
    pareto_k : float or None
        Pareto k-hat of the weight tail (:func:`pareto_k_hat`); None when the tail
        cannot be fitted (fewer than 25 rows, or a tail of tied weights).
    pareto_k_max : float
        Its threshold, min(1 - 1 / log10(n), 0.7).
    thin_actions : tuple of (action, rows, mass)
        Actions with estimated pi_e mass >= ``min_action_mass`` on fewer than
        ``min_action_rows`` logged rows (empty when actions are not given).
    mean_weight_se : float
        Standard error of the mean weight, sd(w) / sqrt(n).
    low_overlap : bool
        Any of the checks above fired: the gate must not PASS (it still may FAIL).
    overlap_reason : str
        Which checks fired, for the gate's note ("" when none).
    """

    n: int
    ess: float
    ess_ratio: float
    max_weight: float
    p999_weight: float
    mean_weight: float
    top1pct_share: float
    clipped_fraction: float
    n_support_deficient: int | None
    unsupported_mass: float | None
    low_ess: bool
    min_ess: float
    min_ess_ratio: float
    pareto_k: float | None = None
    pareto_k_max: float = 0.7
    thin_actions: tuple = ()
    mean_weight_se: float = 0.0
    low_overlap: bool = False
    overlap_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["thin_actions"] = [list(t) for t in self.thin_actions]
        return out

    @property
    def gate_outcome_cap(self) -> str | None:
        """``"INCONCLUSIVE"`` when the weights cannot support a PASS, else None."""
        return "INCONCLUSIVE" if self.low_overlap else None


def pareto_k_threshold(n: int) -> float:
    """Largest reliable Pareto k-hat with n draws: min(1 - 1 / log10(n), 0.7)
    (Vehtari et al. 2024, eq. 13; 0.667 at n = 1000, 0.7 from n = 2155 on).

    >>> from harness.metrics.ope_diagnostics import pareto_k_threshold
    >>> round(pareto_k_threshold(1000), 4)
    0.6667
    """
    return float(min(1.0 - 1.0 / math.log10(max(n, 11)), 0.7))


def _gpd_fit(x: np.ndarray) -> float:
    """Zhang & Stephens (2009) empirical-Bayes fit of a generalized Pareto to sorted
    exceedances ``x >= 0``, as PSIS does it: returns k (> 0 heavy tail; the negative of
    Zhang & Stephens' k), shrunk towards 0.5 by a weak prior, k n / (n + 10) + 5 / (n + 10).

    With b_j = 1 / x_(n) + (1 - sqrt(m / (j - 1/2))) / (3 x_(floor(n/4 + 1/2))),
    j = 1..m, m = 80 + floor(sqrt(n)), profile log-likelihoods
    l_j = n (log(-b_j / k_j) - k_j - 1) with k_j = mean(log(1 - b_j x)), posterior
    weights w_j = 1 / sum_i exp(l_i - l_j), b = sum_j w_j b_j and k = mean(log(1 - b x)).
    """
    n = x.size
    m = 80 + int(math.floor(math.sqrt(n)))
    j = np.arange(1, m + 1)
    b = 1.0 / x[-1] + (1.0 - np.sqrt(m / (j - 0.5))) / 3.0 / x[int(math.floor(n / 4 + 0.5)) - 1]
    k_j = np.log1p(-b[:, None] * x[None, :]).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        lik = n * (np.log(-b / k_j) - k_j - 1.0)
        lik = np.where(np.isfinite(lik), lik, -np.inf)
        w = 1.0 / np.exp(lik[None, :] - lik[:, None]).sum(axis=1)
    w = np.where(np.isfinite(w), w, 0.0)
    b_hat = float((b * w).sum() / w.sum())
    k = float(np.log1p(-b_hat * x).mean())
    return k * n / (n + 10) + 10 * 0.5 / (n + 10)


def _tail_length(n: int) -> int:
    """M = min(ceil(n / 5), ceil(3 sqrt(n))): the tail PSIS fits."""
    return int(min(math.ceil(0.2 * n), math.ceil(3 * math.sqrt(n))))


def pareto_k_hat(weights: np.ndarray) -> float | None:
    """Pareto k-hat of the importance-weight tail (PSIS diagnostic).

    The M = min(ceil(n / 5), ceil(3 sqrt(n))) largest weights, less the largest weight
    outside them, are fitted by a generalized Pareto distribution (:func:`_gpd_fit`).
    k-hat estimates the tail index: the weights have finite variance only for k < 1/2,
    a finite mean only for k < 1, and an importance-sampling estimate is unreliable
    above :func:`pareto_k_threshold` (0.7 for large n).

    Returns None when n < 25 (too short a tail), when more than a quarter of the tail
    ties with the cut-off, or when the tail holds fewer than M / 2 distinct values:
    discrete weights (finitely many contexts x actions) are bounded, and a Pareto fit to
    a few atoms means nothing (it gave k-hat 2.4 on an eps-greedy policy over 30 x 6
    cells); the ESS, support and mean-weight checks of :func:`weight_diagnostics` cover
    them.

    References
    ----------
    Vehtari, Simpson, Gelman, Yao & Gabry (2024), Pareto smoothed importance sampling,
    *JMLR* 25(72), sec. 3; Zhang & Stephens (2009), *Technometrics* 51(3), 316-325.

    Examples
    --------
    Weights with a Pareto tail of index 1/2 (infinite variance):

    >>> import numpy as np
    >>> from harness.metrics.ope_diagnostics import pareto_k_hat
    >>> rng = np.random.default_rng(0)
    >>> round(pareto_k_hat(rng.pareto(2.0, 20_000) + 1.0), 1)
    0.5
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.size
    if n < 25:
        return None
    tail_len = _tail_length(n)
    part = np.partition(w, n - tail_len - 1)
    cutoff = part[n - tail_len - 1]
    x = np.sort(part[n - tail_len:]) - cutoff
    if x[int(math.floor(tail_len / 4 + 0.5)) - 1] <= 0 or x[-1] <= 0:
        return None
    if np.count_nonzero(np.diff(x) > 0) + 1 < tail_len / 2:  # a few atoms: no continuous tail
        return None
    return _gpd_fit(x)


def weight_diagnostics(
    pi_e: np.ndarray, pscore: np.ndarray, *, clip: float = math.inf, min_ess: float = 100.0,
    min_ess_ratio: float = 0.01, unsupported_mass: np.ndarray | None = None,
    actions: np.ndarray | None = None, min_action_rows: int = 30, min_action_mass: float = 0.05,
    max_pareto_k: float | None = None, mean_weight_tol: float = 0.05, max_unsupported_mass: float = 0.01,
) -> WeightDiagnostics:
    """Diagnostics of the weights ``pi_e / pscore`` (inputs validated as in ``OPEInputs``).

    Parameters
    ----------
    pi_e, pscore : ndarray of shape (n,)
    clip : float, default inf
        The estimator's clipping (or switching) threshold, for ``clipped_fraction``.
    min_ess, min_ess_ratio : float
        Thresholds of ``low_ess`` (absolute ESS, and ESS / n).
    unsupported_mass : ndarray of shape (n,), optional
        Per row, ``sum_a pi_e(a | x_i) 1{pi_b(a | x_i) = 0}`` (see
        ``support_deficiency``); the logged rows alone cannot reveal it.
    actions : ndarray of shape (n,), optional
        The logged action of each row (any hashable values), for the per-action check.
    min_action_rows, min_action_mass : int, float
        An action is *thin* when its estimated pi_e mass sum_{i: a_i = a} w_i / n is at
        least ``min_action_mass`` and it was logged on fewer than ``min_action_rows`` rows.
    max_pareto_k : float, optional
        k-hat threshold; default :func:`pareto_k_threshold` of n.
    mean_weight_tol : float
        The mean weight is off when |mean(w) - 1| > max(mean_weight_tol, 3 sd(w)/sqrt(n)).
    max_unsupported_mass : float
        Mean pi_e mass outside pi_b's support above which overlap is low (when known).

    Notes
    -----
    ``ESS = (sum_i w_i)^2 / sum_i w_i^2``; equals n when all weights are equal.
    ``low_overlap`` = low ESS, or k-hat > threshold, or a thin action, or an off mean
    weight, or unsupported mass above ``max_unsupported_mass``.

    Examples
    --------
    A rare action: pi_b plays it with probability 0.0065, pi_e with 0.3 (population ESS
    about 70 of 1000). In a sample where it was logged 3 times the sample ESS is 103 and
    ``low_ess`` stays False, but the action is thin:

    >>> import numpy as np
    >>> from harness.metrics import weight_diagnostics
    >>> a = np.r_[np.zeros(3, int), np.ones(997, int)]
    >>> d = weight_diagnostics(np.where(a == 0, 0.3, 0.7), np.where(a == 0, 0.0065, 0.9935), actions=a)
    >>> round(d.ess), d.low_ess, d.low_overlap, d.thin_actions[0][:2]
    (103, False, True, (0, 3))
    """
    pi_e, pscore = check_propensities(pi_e, pscore)
    check_number(min_ess, name="min_ess", low=0.0)
    check_probability(min_ess_ratio, name="min_ess_ratio")
    check_integer(min_action_rows, name="min_action_rows", minimum=1)
    check_probability(min_action_mass, name="min_action_mass", low_open=True)
    check_number(mean_weight_tol, name="mean_weight_tol", low=0.0)
    w = pi_e / pscore
    n = w.shape[0]
    total, sq = float(w.sum()), float(w @ w)
    ess = total * total / sq if sq > 0 else 0.0
    top = max(1, math.ceil(n / 100))
    top_sum = float(np.partition(w, n - top)[n - top:].sum())
    deficient = mass = None
    if unsupported_mass is not None:
        um = np.asarray(unsupported_mass, dtype=np.float64)
        if um.shape != (n,) or not ((um >= 0) & (um <= 1 + 1e-12)).all():
            raise DataValidationError(f"unsupported_mass: expected {n} values in [0, 1], got shape {um.shape}")
        deficient, mass = int((um > 0).sum()), float(um.mean())
    reasons = []
    low_ess = ess < min_ess or ess / n < min_ess_ratio
    if low_ess:
        reasons.append(f"effective sample size {ess:.1f} (min_ess={min_ess:g}, min_ess_ratio={min_ess_ratio:g})")
    # a policy with few distinct probabilities (epsilon-greedy, top-k) gives weights that
    # are a few atoms scaled by the logging propensities: bounded, and a Pareto fit to such
    # a mixture reports a heavy tail that is not there (k-hat 3.4 on eps-greedy top-1 over
    # softmax logs with ESS 400); the ESS, thin-action and mean-weight checks cover it
    tail = np.argpartition(w, n - _tail_length(n))[n - _tail_length(n):] if n >= 25 else np.arange(n)
    few_atoms = np.unique(np.asarray(pi_e)[tail]).size < tail.size / 2
    k_hat = None if few_atoms else pareto_k_hat(w)
    k_max = pareto_k_threshold(n) if max_pareto_k is None else float(max_pareto_k)
    if k_hat is not None and k_hat > k_max:
        reasons.append(f"Pareto k-hat {k_hat:.2f} > {k_max:.2f}: the weight tail is too heavy")
    thin: tuple = ()
    if actions is not None:
        act = np.asarray(actions)
        if act.shape != (n,):
            raise DataValidationError(f"actions: expected shape ({n},), got {act.shape}")
        labels, inverse = np.unique(act, return_inverse=True)
        rows = np.bincount(inverse, minlength=labels.size)
        share = np.bincount(inverse, weights=w, minlength=labels.size) / n
        bad = (share >= min_action_mass) & (rows < min_action_rows)
        order = np.argsort(-share[bad], kind="stable")
        thin = tuple((plain_value(labels[bad][i]), int(rows[bad][i]), float(share[bad][i])) for i in order)
        if thin:
            a0, r0, m0 = thin[0]
            reasons.append(f"{len(thin)} thin action(s), e.g. action {a0!r}: estimated pi_e mass {m0:.2f} on "
                           f"{r0} logged rows (< {min_action_rows})")
    mean_w = total / n
    se_w = float(w.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    if abs(mean_w - 1.0) > max(mean_weight_tol, 3 * se_w):
        reasons.append(f"mean weight {mean_w:.3f} (SE {se_w:.3f}) is not 1: pi_e puts mass on actions the "
                       "logs barely or never show")
    if mass is not None and mass > max_unsupported_mass:
        reasons.append(f"pi_e mass {mass:.3f} outside the logging policy's support")
    return WeightDiagnostics(
        n=n, ess=ess, ess_ratio=ess / n, max_weight=float(w.max()),
        p999_weight=float(np.quantile(w, 0.999)), mean_weight=mean_w,
        top1pct_share=top_sum / total if total > 0 else 0.0,
        clipped_fraction=float((w > clip).mean()), n_support_deficient=deficient,
        unsupported_mass=mass, low_ess=low_ess,
        min_ess=float(min_ess), min_ess_ratio=float(min_ess_ratio), pareto_k=k_hat, pareto_k_max=k_max,
        thin_actions=thin, mean_weight_se=se_w, low_overlap=bool(reasons), overlap_reason="; ".join(reasons),
    )


def support_deficiency(pi_e_dist: np.ndarray, pi_b_dist: np.ndarray) -> np.ndarray:
    """Per-row pi_e mass on actions pi_b never takes: ``sum_a pi_e(a|x) 1{pi_b(a|x) = 0}``.

    Parameters
    ----------
    pi_e_dist, pi_b_dist : ndarray of shape (n, n_actions) or (n, n_actions, len_list)
        Dense distributions (a batch of rows; callers stream large data in batches).
        With positions, the mass is averaged over positions.
    """
    e = np.asarray(pi_e_dist, dtype=np.float64)
    b = np.asarray(pi_b_dist, dtype=np.float64)
    if e.shape != b.shape or e.ndim not in (2, 3):
        raise DataValidationError(f"support_deficiency: pi_e shape {e.shape} and pi_b shape {b.shape} "
                                  f"must match and be 2-D or 3-D")
    mass = np.where(b == 0, e, 0.0).sum(axis=1)
    return mass.mean(axis=1) if mass.ndim == 2 else mass
