"""Power and minimum detectable effect for planning an A/B test (two independent groups).

With N units split as p to treatment and 1 - p to control, per-unit standard deviation
sigma (the same in both arms), CUPED removing a fraction R of the variance
(R = rho^2 for one covariate of correlation rho), the difference of means has

    SE(N) = sigma sqrt(1 - R) sqrt(1 / (p N) + 1 / ((1 - p) N)),

and a test at level alpha (``sides`` 2: z_{1 - alpha/2}; 1: z_{1 - alpha}) has power
1 - beta against an effect of

    MDE(N) = (c + z_{1 - beta}) SE(N),

c the critical value. For always-valid monitoring c is the confidence sequence's
half-width in standard errors at the horizon N
(:func:`harness.metrics.sequential.cs_multiplier`), larger than z: the price of
looking at will. Several tests (``n_tests``: metrics x treatments) are planned at
alpha / n_tests (Bonferroni: what Holm's first step needs). The sample size solves
MDE(N) = effect: N = (c + z_{1-beta})^2 sigma^2 (1 - R) (1/p + 1/(1-p)) / effect^2,
by bisection for the sequential c, which depends on N.

A proportion p0 has sigma = sqrt(p0 (1 - p0)); a relative effect is effect / baseline.

References
----------
Cohen, J. (1988). *Statistical Power Analysis for the Behavioral Sciences*, ch. 2.
Kohavi, Tang & Xu (2020). *Trustworthy Online Controlled Experiments*, ch. 17.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

from harness.errors import ConfigError
from harness.options import check_integer, check_number, check_probability

from .sequential import cs_multiplier, cs_rho2

SIDES = (1, 2)


def _critical(n_units: float, alpha: float, sides: int, sequential: bool) -> float:
    if sequential:
        level = alpha if sides == 2 else 2 * alpha  # the one-sided CS p-value is conservative by <= 2
        return float(cs_multiplier(n_units, alpha=level, rho2=cs_rho2(n_units, alpha=level)))
    return float(special.ndtri(1 - alpha / sides))


def _check(std_dev: float, alpha: float, power: float, allocation: float, sides: int, variance_reduction: float,
           n_tests: int) -> float:
    check_number(std_dev, name="std_dev", low=0.0, low_open=True)
    check_probability(alpha, name="alpha", low_open=True, high_open=True)
    check_probability(power, name="power", low_open=True, high_open=True)
    check_probability(allocation, name="allocation", low_open=True, high_open=True)
    check_probability(variance_reduction, name="variance_reduction", high_open=True)
    if sides not in SIDES:
        raise ConfigError(f"sides: {sides!r} is not 1 or 2")
    if int(n_tests) < 1:
        raise ConfigError(f"n_tests: {n_tests!r} must be >= 1")
    return alpha / int(n_tests)


def ab_standard_error(n_units: float, std_dev: float, *, allocation: float = 0.5,
                      variance_reduction: float = 0.0) -> float:
    """SE of the difference of means: sigma sqrt(1 - R) sqrt(1 / (p N) + 1 / ((1 - p) N))."""
    return float(std_dev * np.sqrt(1 - variance_reduction)
                 * np.sqrt(1 / (allocation * n_units) + 1 / ((1 - allocation) * n_units)))


def ab_mde(n_units: float, std_dev: float, *, alpha: float = 0.05, power: float = 0.8, allocation: float = 0.5,
           sides: int = 2, variance_reduction: float = 0.0, n_tests: int = 1, sequential: bool = False) -> float:
    """Minimum detectable (absolute) effect with ``n_units`` units in all:
    (c + z_power) SE(N); see the module notes.

    >>> from harness.metrics.ab_power import ab_mde
    >>> round(ab_mde(20_000, 1.0), 5)  # (1.95996 + 0.84162) * sqrt(2 / 10000)
    0.03962
    """
    level = _check(std_dev, alpha, power, allocation, sides, variance_reduction, n_tests)
    n_units = check_number(n_units, name="n_units", low=4.0)
    se = ab_standard_error(n_units, std_dev, allocation=allocation, variance_reduction=variance_reduction)
    return float((_critical(n_units, level, sides, sequential) + special.ndtri(power)) * se)


def ab_sample_size(effect: float, std_dev: float, *, alpha: float = 0.05, power: float = 0.8,
                   allocation: float = 0.5, sides: int = 2, variance_reduction: float = 0.0, n_tests: int = 1,
                   sequential: bool = False) -> int:
    """Total units (both arms) for a test to detect an absolute ``effect`` with ``power``:
    the smallest N with MDE(N) <= |effect| (closed form for a fixed horizon, bisection for
    a sequential one).

    >>> from harness.metrics.ab_power import ab_sample_size
    >>> ab_sample_size(0.1, 1.0)  # 4 (1.95996 + 0.84162)^2 / 0.01 = 3139.6
    3140
    """
    level = _check(std_dev, alpha, power, allocation, sides, variance_reduction, n_tests)
    effect = abs(check_number(effect, name="effect"))
    if effect == 0:
        raise ConfigError("effect: 0 cannot be detected; give the smallest effect worth detecting")
    unit_var = std_dev ** 2 * (1 - variance_reduction) * (1 / allocation + 1 / (1 - allocation))
    z_pow = float(special.ndtri(power))
    if not sequential:
        c = _critical(1.0, level, sides, False)
        return int(np.ceil((c + z_pow) ** 2 * unit_var / effect ** 2 - 1e-9))

    def gap(n: float) -> float:
        return (_critical(n, level, sides, True) + z_pow) * np.sqrt(unit_var / n) - effect

    lo, hi = 4.0, 8.0
    while gap(hi) > 0:
        lo, hi = hi, hi * 2
        if hi > 1e15:
            raise ConfigError(f"effect {effect:g}: more than 1e15 units would be needed")
    return int(np.ceil(optimize.brentq(gap, lo, hi, xtol=0.5)))


def ab_arm_sizes(n_units: int, allocation: float = 0.5) -> tuple[int, int]:
    """``(treatment, control)`` units for a plan of ``n_units`` at ``allocation``: each
    arm's share rounded up, so that neither arm falls short of the plan (their sum, the
    units to enrol, may then exceed ``n_units`` by one).

    >>> from harness.metrics.ab_power import ab_arm_sizes
    >>> ab_arm_sizes(14913), ab_arm_sizes(10, 0.3)
    ((7457, 7457), (3, 7))
    """
    n_units = check_integer(n_units, name="n_units", minimum=2)
    allocation = check_probability(allocation, name="allocation", low_open=True, high_open=True)
    # a share that is a whole number in exact arithmetic stays one (10 * 0.3 = 3.0000000000000004)
    return tuple(int(np.ceil(round(n_units * share, 9))) for share in (allocation, 1 - allocation))  # type: ignore[return-value]
