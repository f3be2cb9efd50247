"""Offline -> online agreement over a history of launches: does an offline metric predict
the online lift?

For L launches with an offline delta d_l (e.g. nDCG@10 of the candidate minus the
baseline, from ``harness run``) and an online lift y_l (from the launch's A/B test,
``harness ab``):

- Spearman's rank correlation rho_s of (d, y), with the Fisher-z interval
  tanh(atanh(rho_s) -+ z_{1-alpha/2} sqrt(1.06 / (L - 3))) (Fieller, Hartley & Pearson 1957:
  the variance of atanh(rho_s) is about 1.06 / (L - 3));
- sign agreement: the share of launches whose offline delta and online lift have the
  same sign (ties with 0 left out), with its Wilson interval: 0.5 is a coin flip.

References
----------
Fieller, E. C., Hartley, H. O. & Pearson, E. S. (1957). Tests for rank correlation
coefficients. I. *Biometrika* 44, 470-481.
Wilson, E. B. (1927). Probable inference, the law of succession, and statistical
inference. *JASA* 22, 209-212.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from harness.errors import DataValidationError
from harness.options import check_confidence

from .calibration import wilson_interval


@dataclass(frozen=True)
class Agreement:
    """How an offline delta and an online lift agree over ``n`` launches (NaN where too
    few: the rank correlation's interval needs 4, its value 3)."""

    n: int
    spearman: float
    spearman_ci_low: float
    spearman_ci_high: float
    sign_agreement: float
    sign_ci_low: float
    sign_ci_high: float
    n_signed: int


def offline_online_agreement(offline: np.ndarray, online: np.ndarray, *, confidence: float = 0.95) -> Agreement:
    """Spearman correlation (Fisher-z interval) and sign agreement (Wilson interval) of
    offline deltas and online lifts over launches; see the module notes.

    >>> import numpy as np
    >>> from harness.metrics.launch_history import offline_online_agreement
    >>> a = offline_online_agreement(np.array([0.01, 0.02, -0.01, 0.03, 0.0]),
    ...                              np.array([0.2, 0.5, -0.1, 0.4, 0.1]))
    >>> round(a.spearman, 3), a.sign_agreement, a.n_signed   # the 0.0 delta has no sign
    (0.9, 1.0, 4)
    """
    confidence = check_confidence(confidence)
    d = np.asarray(offline, dtype=np.float64)
    y = np.asarray(online, dtype=np.float64)
    if d.shape != y.shape or d.ndim != 1:
        raise DataValidationError(f"offline/online agreement: need two 1-D arrays of one value per launch, "
                                  f"got shapes {d.shape} and {y.shape}")
    keep = np.isfinite(d) & np.isfinite(y)
    d, y = d[keep], y[keep]
    n = int(d.size)
    rho = lo = hi = float("nan")
    if n >= 3 and np.ptp(d) > 0 and np.ptp(y) > 0:
        from scipy import stats  # ~0.8 s to import: only here, for the launch history

        rho = float(stats.spearmanr(d, y).statistic)
        if n >= 4:
            z = float(special.ndtri(0.5 + confidence / 2))
            centre = np.arctanh(np.clip(rho, -1 + 1e-12, 1 - 1e-12))
            half = z * np.sqrt(1.06 / (n - 3))
            lo, hi = float(np.tanh(centre - half)), float(np.tanh(centre + half))
    signed = (d != 0) & (y != 0)
    m = int(signed.sum())
    agree = int((np.sign(d[signed]) == np.sign(y[signed])).sum())
    share = agree / m if m else float("nan")
    s_lo, s_hi = wilson_interval(agree, m, confidence=confidence)
    return Agreement(n, rho, lo, hi, float(share), float(s_lo), float(s_hi), m)
