"""Always-valid inference: asymptotic confidence sequences for monitoring an A/B test.

A fixed-horizon interval is valid at ONE look; an experiment checked every day and
stopped at the first significant look has a false-positive rate far above alpha (about
4x at 14 daily looks). A confidence sequence (CS) is valid at every look at once:
P(exists t: delta outside CS_t) <= alpha, so the test may be watched and stopped at will.

The asymptotic CS of Waudby-Smith et al. (2021) replaces the fixed-horizon quantile
z_{1-alpha/2} by the normal-mixture boundary of Robbins (1970): with t units seen and
the estimate's asymptotic standard deviation sigma_t = SE_t sqrt(t),

    CS_t = estimate_t -+ sigma_t sqrt( 2 (t rho^2 + 1) / (t^2 rho^2) * log( sqrt(t rho^2 + 1) / alpha ) ),

rho > 0 a tuning constant that makes the sequence tightest near t = horizon:
rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / horizon (their eq. for the approximately
optimal rho). Its always-valid p-value for H0: delta = m is 1 / M_t(m), M_t the mixture
martingale:

    p_t(m) = min(1, sqrt(t rho^2 + 1) * exp( - z^2 t rho^2 / (2 (t rho^2 + 1)) )),   z = (estimate - m) / SE,

so that {m : p_t(m) > alpha} = CS_t. One-sided p-values take p_t(m) on the side of the
estimate (and 1 on the other): valid at level alpha, conservative by at most a factor 2.

References
----------
Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas (2021). Time-uniform central limit theory
and asymptotic confidence sequences. arXiv:2103.06476 (Theorem 2.2).
Robbins (1970). Statistical methods related to the law of the iterated logarithm.
*Ann. Math. Statist.* 41(5), 1397-1409.
Howard, Ramdas, McAuliffe & Sekhon (2021). Time-uniform, nonparametric, nonasymptotic
confidence sequences. *Ann. Statist.* 49(2), 1055-1080.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.options import check_confidence, check_number

from .stats import DeltaInference

ALWAYS_VALID = "always_valid"


def cs_rho2(horizon: float, *, alpha: float = 0.05) -> float:
    """The tuning constant rho^2 that makes the CS tightest at ``horizon`` units:
    rho^2 = (-2 log alpha + log(-2 log alpha + 1)) / horizon.

    >>> from harness.metrics.sequential import cs_rho2
    >>> round(cs_rho2(1000, alpha=0.05), 6)  # (5.991465 + log(6.991465)) / 1000
    0.007936
    """
    horizon = check_number(horizon, name="horizon", low=1.0)
    a = -2.0 * np.log(alpha)
    return float((a + np.log(a + 1.0)) / horizon)


def cs_multiplier(n_units: np.ndarray | float, *, alpha: float = 0.05, rho2: float) -> np.ndarray | float:
    """The CS half-width in standard errors at ``n_units`` units (the role z_{1-alpha/2}
    plays in a fixed-horizon interval): sqrt(2 (t rho^2 + 1) / (t rho^2) log(sqrt(t rho^2 + 1) / alpha)).

    Always above z_{1-alpha/2} (1.96 at alpha = 0.05): the price of looking at will.

    >>> from harness.metrics.sequential import cs_multiplier, cs_rho2
    >>> round(float(cs_multiplier(1000, rho2=cs_rho2(1000))), 3)
    3.035
    """
    t = np.asarray(n_units, dtype=np.float64)
    v = t * rho2 + 1.0
    out = np.sqrt(2.0 * v / (t * rho2) * np.log(np.sqrt(v) / alpha))
    return float(out) if out.ndim == 0 else out


def always_valid_p(z: np.ndarray | float, n_units: np.ndarray | float, *, rho2: float) -> np.ndarray | float:
    """Two-sided always-valid p-value min(1, sqrt(t rho^2 + 1) exp(-z^2 t rho^2 / (2 (t rho^2 + 1))))
    for a standardised estimate ``z`` after ``n_units`` units (vectorised)."""
    t = np.asarray(n_units, dtype=np.float64)
    v = t * rho2 + 1.0
    z = np.asarray(z, dtype=np.float64)
    out = np.minimum(1.0, np.sqrt(v) * np.exp(-z * z * t * rho2 / (2.0 * v)))
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class SequentialInference(DeltaInference):
    """An always-valid confidence sequence and its p-values at the current look.

    ``rho2`` is the tuning constant, ``horizon`` the units it was tuned for; ``std_error``
    the fixed-horizon standard error of the estimate at ``n_units`` units.
    """

    rho2: float = 1.0
    horizon: float = 1.0

    def _p(self, margin: float, sign: float) -> float:
        diff = sign * (self.estimate - margin)
        if diff <= 0:
            return 1.0
        if self.std_error <= 0:
            return 0.0
        return float(always_valid_p(diff / self.std_error, self.n_units, rho2=self.rho2))

    def p_greater(self, margin: float) -> float:
        return self._p(margin, 1.0)

    def p_less(self, margin: float) -> float:
        return self._p(margin, -1.0)

    def p_two_sided(self, margin: float = 0.0) -> float:
        """The always-valid two-sided p-value itself (not twice a one-sided one)."""
        if self.std_error <= 0:
            return 1.0 if self.estimate == margin else 0.0
        return float(always_valid_p((self.estimate - margin) / self.std_error, self.n_units, rho2=self.rho2))


def always_valid_inference(estimate: float, std_error: float, n_units: int, *, confidence: float = 0.95,
                           horizon: float | None = None) -> SequentialInference:
    """Asymptotic confidence sequence for an estimate with standard error ``std_error``
    after ``n_units`` units (Waudby-Smith et al. 2021, Theorem 2.2).

    Parameters
    ----------
    estimate, std_error : float
        The estimate at this look and its fixed-horizon standard error (e.g. Welch's).
    n_units : int
        Units seen so far (randomisation units: users, or clusters).
    confidence : float
        1 - alpha: the CS covers the true delta at every look with this probability.
    horizon : float, optional
        The planned number of units, where the sequence is tuned to be tightest; default
        ``n_units`` (then the CS is tightest now).

    Returns
    -------
    SequentialInference
        ``ci_low``/``ci_high`` = estimate -+ std_error * :func:`cs_multiplier`.

    >>> from harness.metrics.sequential import always_valid_inference
    >>> inf = always_valid_inference(0.1, 0.05, 1000)
    >>> round(inf.ci_high - 0.1, 4)   # 3.035 SE instead of 1.96 SE
    0.1518
    >>> round(inf.p_two_sided(inf.ci_low), 6)  # the bound is where p = alpha
    0.05
    """
    confidence = check_confidence(confidence)
    alpha = 1.0 - confidence
    n = int(n_units)
    rho2 = cs_rho2(float(horizon if horizon is not None else n), alpha=alpha)
    half = float(std_error) * float(cs_multiplier(n, alpha=alpha, rho2=rho2))
    return SequentialInference(float(estimate), float(estimate) - half, float(estimate) + half, ALWAYS_VALID,
                               float(std_error), n, rho2=rho2,
                               horizon=float(horizon if horizon is not None else n))
