"""Overlap diagnostics of importance weights, for every off-policy estimate.

An off-policy estimate is only as good as the overlap between the logging policy pi_b
and the evaluation policy pi_e. These numbers say how much of the data really informs
the estimate; ``low_ess`` is the flag a launch gate reads to answer INCONCLUSIVE
rather than PASS.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import DataValidationError

from ._ope_inputs import check_propensities

__all__ = ["WeightDiagnostics", "support_deficiency", "weight_diagnostics"]


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

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @property
    def gate_outcome_cap(self) -> str | None:
        """``"INCONCLUSIVE"`` when the weights cannot support a PASS, else None."""
        return "INCONCLUSIVE" if self.low_ess else None


def weight_diagnostics(
    pi_e: np.ndarray, pscore: np.ndarray, *, clip: float = math.inf, min_ess: float = 100.0,
    min_ess_ratio: float = 0.01, unsupported_mass: np.ndarray | None = None,
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

    Notes
    -----
    ``ESS = (sum_i w_i)^2 / sum_i w_i^2``; equals n when all weights are equal.
    """
    pi_e, pscore = check_propensities(pi_e, pscore)
    if min_ess < 0 or not 0 <= min_ess_ratio <= 1:
        raise DataValidationError(f"min_ess must be >= 0 and min_ess_ratio in [0, 1], got "
                                  f"{min_ess!r}, {min_ess_ratio!r}")
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
    return WeightDiagnostics(
        n=n, ess=ess, ess_ratio=ess / n, max_weight=float(w.max()),
        p999_weight=float(np.quantile(w, 0.999)), mean_weight=total / n,
        top1pct_share=top_sum / total if total > 0 else 0.0,
        clipped_fraction=float((w > clip).mean()), n_support_deficient=deficient,
        unsupported_mass=mass, low_ess=ess < min_ess or ess / n < min_ess_ratio,
        min_ess=float(min_ess), min_ess_ratio=float(min_ess_ratio),
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
