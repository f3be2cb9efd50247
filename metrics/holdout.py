"""Several launches sharing one long-term holdout: each launch's own effect and the
cumulative effect of every launch so far, from per-unit totals by launch period.

A holdout group H is kept off every launch; the treated population T gets launch
l = 1..L from its start window s_l on. Window w belongs to period p(w) = #{l : s_l <= w}
(period 0: before the first launch). With rows (unit, window), each unit's rows are
summed per period: numerator and denominator totals N_{i,p}, D_{i,p} (for a mean
metric the denominator is the row count). In an arm, the period-p metric is the ratio
of totals R_p = sum_i N_{i,p} / sum_i D_{i,p} (every row of the period weighs the same),
and

- the cumulative effect of the launches live in period p: C_p = R_p(T) - R_p(H);
- launch l's own effect (its increment): I_l = C_l - C_{l-1}, with C_0 the effect before
  the first launch (0 when the data start at the first launch: the arms are randomised).

Both are linear combinations sum_p c_p R_p of ratios of unit-level means, so their
variance is by the delta method over units (Deng, Knoblich & Lu 2018): each unit's
windows stay together, so the weeks of one user are not treated as independent, and
C_l and C_{l-1}, measured on the same units, have their covariance in Var(I_l). Arms
are independent: Var = v_T + v_H, Welch-Satterthwaite degrees of freedom.

References
----------
Deng, A., Knoblich, U. & Lu, J. (2018). Applying the delta method in metric analytics: a
practical guide with novel ideas. *KDD 2018*.
Hohnhold, H., O'Brien, D. & Tang, D. (2015). Focusing on the long-term: it's good for
users and business. *KDD 2015* (long-term holdouts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from harness.errors import DataValidationError

from .ab import ABEffect, ArmEstimate, Ratio, VariantMoments, ab_effect, ratio_value_and_gradient

# the row count of a period: the denominator of a mean metric's period ratio
ROWS = "__rows__"


def period_column(column: str, group: str, period: int) -> str:
    """The per-unit total of ``column`` over the rows of ``group`` in ``period``."""
    return f"{column}|{group}|{period}"


def linear_ratio_estimate(moments: VariantMoments, terms: Sequence[tuple[float, Ratio]]) -> ArmEstimate:
    """sum_k c_k mean(num_k) / mean(den_k) over one arm's units and its delta-method
    variance g' Sigma g / n (g the gradient in the column means, Sigma their per-unit
    covariance, ddof 1).

    >>> import numpy as np
    >>> from harness.metrics.ab import Ratio, variant_moments
    >>> from harness.metrics.holdout import linear_ratio_estimate
    >>> x = np.array([[2.0, 1, 3, 1], [4, 2, 4, 2], [3, 1, 5, 1]])
    >>> (m,) = variant_moments(x, np.zeros(3, dtype=int), names=["T"], columns=["n1", "d1", "n2", "d2"])
    >>> e = linear_ratio_estimate(m, [(1.0, Ratio("n2", "d2")), (-1.0, Ratio("n1", "d1"))])
    >>> round(e.value, 6)   # 12/4 - 9/4
    0.75
    """
    cols = list(dict.fromkeys(c for _, r in terms for c in r.columns))
    idx = moments.index(cols)
    where = {c: j for j, c in enumerate(cols)}
    mu = moments.mean(idx)
    value, grad = 0.0, np.zeros(len(cols))
    for coef, ratio in terms:
        f, g = ratio_value_and_gradient(ratio, mu, where)
        value += coef * f
        grad += coef * g
    var = max(float(grad @ moments.covariance(idx) @ grad) / moments.n, 0.0)
    return ArmEstimate(moments.variant, moments.n, value, var, value, var)


@dataclass(frozen=True)
class LaunchEffect:
    """One launch on one metric: ``cumulative`` (every launch live in its period, treated
    vs holdout, with the relative lift) and ``increment`` (its own effect: the cumulative
    effect minus the previous period's)."""

    launch: str
    metric: str
    cumulative: ABEffect
    increment: ABEffect


def launch_effect(control: VariantMoments, treatment: VariantMoments, metric: Ratio, *, launch: str,
                  metric_name: str, group: str, period: int, previous: int | None,
                  confidence: float = 0.95) -> LaunchEffect:
    """The effects of the launch whose period is ``period`` in ``group`` (columns named by
    :func:`period_column`; a mean metric's denominator is :data:`ROWS`); ``previous`` is
    the period before it, or None when there is none (its cumulative effect is then 0)."""

    def ratio(p: int) -> Ratio:
        den = metric.denominator or ROWS
        return Ratio(period_column(metric.numerator, group, p), period_column(den, group, p))

    for m in (control, treatment):
        den = m.sums[m.index([ratio(period).denominator or ""])][0]
        if den == 0:
            raise DataValidationError(f"launch {launch!r}: variant {m.variant!r} has no "
                                      f"{'rows' if metric.denominator is None else repr(metric.denominator)} "
                                      f"in the launch's windows ({group}), so its effect on {metric_name!r} "
                                      "cannot be measured")
    now = [(1.0, ratio(period))]
    own = now if previous is None else [*now, (-1.0, ratio(previous))]
    cumulative = ab_effect(linear_ratio_estimate(control, now), linear_ratio_estimate(treatment, now),
                           metric=metric_name, confidence=confidence)
    increment = ab_effect(linear_ratio_estimate(control, own), linear_ratio_estimate(treatment, own),
                          metric=metric_name, confidence=confidence)
    return LaunchEffect(launch, metric_name, cumulative, increment)
