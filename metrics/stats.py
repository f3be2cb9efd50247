"""Statistics for paired comparisons: intervals, one-sided tests, multiplicity, power.

Every function works on per-unit values (one row per query, logged round or user), so
that a candidate and its baseline are compared on the SAME units.

Three families of inference, each giving an interval and one-sided p-values for any
margin (``p_greater(m)``: H1 delta > m; ``p_less(m)``: H1 delta < m):

- paired Student t (means; the relative difference through the delta method);
- paired bootstrap, percentile or BCa, for any statistic that is a function of
  (weighted) sums of per-unit columns: means, ratios such as SNIPS, binned errors such
  as ECE (see :class:`SumStatistic`);
- paired randomisation (sign-flip) test, exact for small n, Monte Carlo otherwise.

Bootstrap weights. Resampling n units with replacement is the same as weighting unit i
by its count c_i ~ Multinomial(n, 1/n); the statistic then needs only the weighted
column sums ``c @ parts``: a matrix product instead of a gather. Every bootstrap draws
its weights from one generator, :mod:`harness.metrics._resample`: for small n the
counts of exactly the resamples ``scipy.stats.bootstrap`` draws for the same seed; for
large n independent Poisson(1) weights (the Poisson bootstrap, Hanley & MacGibbon 2006;
Chamandy et al. 2012), a pure function of (seed, resample, unit), drawn per block of
units so that memory is bounded by one block.

References
----------
Efron & Tibshirani (1993), *An Introduction to the Bootstrap*, ch. 14 (BCa).
Chamandy, Muralidharan, Najmi & Naidu (2012), *Estimating uncertainty for massive
data streams*, Google technical report (Poisson bootstrap).
Fisher (1935), *The Design of Experiments* (randomisation test).
Holm (1979); Benjamini & Hochberg (1995).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
from scipy import special

from harness.errors import ConfigError, DataValidationError
from harness.options import check_bounds, check_choice, check_confidence, check_integer, check_probability

from ._resample import MAX_CELLS, resolve_scheme, weight_blocks, weighted_sums

# Up to this many units ``sign_flip_means`` enumerates all 2^n sign vectors.
EXACT_SIGN_FLIP_MAX_UNITS = 14
# The randomisation test is exact when its null distribution has at most this many
# distinct support points (units grouped by value: see ``sign_flip_support``).
EXACT_SIGN_FLIP_MAX_SUPPORT = 1 << 16

Combine = Callable[[np.ndarray, np.ndarray], np.ndarray]
BOOTSTRAP_METHODS = ("bootstrap", "bca")
METHODS = ("bootstrap", "bca", "t_test", "randomization", "auto")
# ``method="auto"``: the method each kind of metric (see ``metric_kind``) gets by default.
DEFAULT_METHOD_BY_KIND = {"regular": "bootstrap", "skewed": "t_test"}


def _as_2d(values: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise DataValidationError(f"{name}: need at least 2 units, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataValidationError(f"{name}: {int(bad.sum())} NaN or infinite values "
                                  f"(e.g. row {int(np.argwhere(bad)[0][0])})")
    return arr


def _check_level(confidence: float, n_resamples: int) -> None:
    check_confidence(confidence)
    check_integer(n_resamples, name="n_resamples", minimum=10)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class SumStatistic:
    """A statistic computed from the column sums of per-unit parts.

    ``value = combine(parts.sum(axis=0), n_units)``. Under a bootstrap resample with
    unit weights ``w`` it is ``combine(w @ parts, w.sum())``, and with unit i left out
    (jackknife) ``combine(S - parts[i], n - 1)``: so every such statistic gets
    percentile and BCa intervals without per-resample Python code.

    Parameters
    ----------
    parts : ndarray of shape (n_units, k)
        Per-unit contributions, e.g. ``[w_i r_i, w_i]`` for SNIPS.
    combine : callable ``(sums, total) -> value``
        ``sums`` has shape (..., k), ``total`` (the summed unit weights) broadcasts to
        (...). Must be vectorised over the leading axes.
    name : str
        For messages.
    bounds : (low, high), optional
        The range of the statistic's values, e.g. (0, 1) for ECE or (0, inf) for a
        ratio of non-negative sums: intervals are intersected with it (see
        :func:`clip_interval`).
    resample_combine : callable, optional
        The statistic of a resample, when it must differ from ``combine``: for a
        bias-corrected estimator ``theta = T - b`` (T a plug-in, b an estimate of its
        bias), the truth of the bootstrap world is the plug-in value T(F_n), around
        which the replicates ``T* - b*`` centre; ``T* - 2 b*`` centres on theta and
        mimics its sampling distribution (the bootstrap analogue of a bias-corrected
        estimate; Efron & Tibshirani 1993, sec. 10.6). Default: ``combine``.

    Examples
    --------
    A mean is ``mean_statistic(x)``; SNIPS = sum(w r) / sum(w) is
    ``ratio_statistic(w * r, w)``; ECE over bins b is ``SumStatistic(parts=onehot_b *
    (y - p), combine=lambda s, t: np.abs(s).sum(-1) / t)``.

    >>> import numpy as np
    >>> from harness.metrics.stats import SumStatistic, ratio_statistic
    >>> w, r = np.array([1.0, 1.0, 2.0]), np.array([1.0, 0.0, 1.0])
    >>> ratio_statistic(w * r, w).value()  # (1 + 0 + 2) / (1 + 1 + 2)
    0.75
    >>> y, p = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.9, 0.2, 0.6, 0.4])
    >>> onehot = np.array([[0, 1], [1, 0], [0, 1], [1, 0]])  # bins [0, .5), [.5, 1]
    >>> ece = SumStatistic(onehot * (y - p)[:, None], lambda s, t: np.abs(s).sum(-1) / t)
    >>> round(ece.value(), 4)  # (|-0.2 - 0.4| + |0.1 + 0.4|) / 4
    0.275
    """

    parts: np.ndarray
    combine: Combine
    name: str = "statistic"
    bounds: tuple[float, float] | None = None
    resample_combine: Combine | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", _as_2d(self.parts, f"{self.name} parts"))
        object.__setattr__(self, "bounds", check_bounds(self.bounds, name=f"{self.name} bounds"))

    @property
    def bootstrap_combine(self) -> Combine:
        """The function of resampled sums the bootstrap uses (``resample_combine`` or
        ``combine``)."""
        return self.resample_combine or self.combine

    @property
    def n_units(self) -> int:
        return int(self.parts.shape[0])

    def value(self) -> float:
        return float(self.combine(self.parts.sum(axis=0), np.float64(self.n_units)))


def mean_statistic(values: np.ndarray, *, name: str = "mean",
                   bounds: tuple[float, float] | None = None) -> SumStatistic:
    """Mean of per-unit values: sum(w x) / sum(w)."""
    return SumStatistic(np.asarray(values, dtype=np.float64), lambda s, t: s[..., 0] / t, name, bounds)


def ratio_statistic(numerator: np.ndarray, denominator: np.ndarray, *, name: str = "ratio",
                    bounds: tuple[float, float] | None = None) -> SumStatistic:
    """Ratio of sums, sum(num) / sum(den): SNIPS (num = w r, den = w), CTR per impression, ..."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    if num.shape != den.shape or num.ndim != 1:
        raise DataValidationError(f"{name}: numerator {num.shape} and denominator {den.shape} "
                                  "must be 1-D arrays of the same length")
    return SumStatistic(np.column_stack([num, den]), lambda s, t: s[..., 0] / s[..., 1], name, bounds)


def _paired(cand: SumStatistic, base: SumStatistic, op: Callable[[np.ndarray, np.ndarray], np.ndarray],
            name: str, bounds: tuple[float, float] | None) -> SumStatistic:
    if cand.n_units != base.n_units:
        raise DataValidationError(f"{name}: candidate has {cand.n_units} units, baseline {base.n_units}; "
                                  "a paired comparison needs the same units in the same order")
    k = cand.parts.shape[1]
    c_boot, b_boot = cand.bootstrap_combine, base.bootstrap_combine
    resample = (None if cand.resample_combine is None and base.resample_combine is None else
                lambda s, t: op(c_boot(s[..., :k], t), b_boot(s[..., k:], t)))
    return SumStatistic(np.hstack([cand.parts, base.parts]),
                        lambda s, t: op(cand.combine(s[..., :k], t), base.combine(s[..., k:], t)), name, bounds,
                        resample)


def paired_difference(candidate: SumStatistic, baseline: SumStatistic) -> SumStatistic:
    """candidate - baseline on the same units (one resample drives both); its range is
    :func:`difference_bounds` of theirs."""
    return _paired(candidate, baseline, np.subtract, f"{candidate.name} - {baseline.name}",
                   difference_bounds(candidate.bounds, baseline.bounds))


def paired_relative_difference(candidate: SumStatistic, baseline: SumStatistic) -> SumStatistic:
    """candidate / baseline - 1 on the same units; the baseline's own noise is resampled too.
    Its range is :func:`relative_bounds` of theirs."""
    return _paired(candidate, baseline, lambda c, b: c / b - 1.0, f"{candidate.name} / {baseline.name} - 1",
                   relative_bounds(candidate.bounds, baseline.bounds))


# --------------------------------------------------------------------------- ranges


def difference_bounds(a: tuple[float, float] | None, b: tuple[float, float] | None) -> tuple[float, float] | None:
    """Range of x - y for x in ``a`` and y in ``b``: [a_lo - b_hi, a_hi - b_lo] (None if
    either is unknown). Two [0, 1] metrics: [-1, 1].

    >>> from harness.metrics.stats import difference_bounds

    >>> difference_bounds((0.0, 1.0), (0.0, 1.0))
    (-1.0, 1.0)
    """
    if a is None or b is None:
        return None
    return a[0] - b[1], a[1] - b[0]


def relative_bounds(a: tuple[float, float] | None, b: tuple[float, float] | None) -> tuple[float, float] | None:
    """Range of x / y - 1 for x in ``a`` and y in ``b`` when both are non-negative:
    [a_lo / b_hi - 1, a_hi / b_lo - 1] (b_lo = 0: no upper end); None otherwise.

    >>> from harness.metrics.stats import relative_bounds

    >>> relative_bounds((0.0, 1.0), (0.0, 1.0))
    (-1.0, inf)
    """
    if a is None or b is None or a[0] < 0 or b[0] < 0:
        return None
    low = -1.0 if math.isinf(b[1]) or b[1] == 0 else a[0] / b[1] - 1.0
    high = math.inf if b[0] == 0 or math.isinf(a[1]) else a[1] / b[0] - 1.0
    return low, high


def clip_interval(inf: "DeltaInference", bounds: tuple[float, float] | None) -> "DeltaInference":
    """The interval of ``inf`` intersected with ``bounds``, the estimand's range.

    If ``P(theta in [L, U]) >= 1 - alpha`` and theta always lies in ``[a, b]``, then
    ``P(theta in [max(L, a), min(U, b)]) = P(theta in [L, U]) >= 1 - alpha``: a confidence
    set intersected with the parameter space keeps its coverage, and it only gets
    shorter. Estimate, standard error and p-values are unchanged. An interval wholly
    outside the range (possible only when the estimate itself is outside, e.g. a
    debiased estimate below 0) collapses to the nearest end.

    >>> from harness.metrics.stats import TInference, clip_interval

    >>> inf = TInference(0.01, -0.02, 0.04, "t_test", 0.015, 20, df=19.0)
    >>> clip_interval(inf, (0.0, 1.0)).ci_low
    0.0
    """
    if bounds is None:
        return inf
    low, high = bounds
    lo = min(max(inf.ci_low, low), high)
    hi = max(min(inf.ci_high, high), low)
    if lo == inf.ci_low and hi == inf.ci_high:
        return inf
    return dataclasses.replace(inf, ci_low=float(lo), ci_high=float(hi))


# --------------------------------------------------------------------------- inference


@dataclass(frozen=True)
class DeltaInference:
    """Inference on one estimand: estimate, two-sided interval, one-sided p-values.

    ``p_greater(m)`` is the p-value of H1: estimand > m; ``p_less(m)`` of H1: < m.
    ``std_error`` is the t standard error, or the bootstrap/randomisation SD.
    ``reliability`` says why the method may not hold its level on these data (e.g. a
    skewed metric under a bootstrap method), or is None.
    """

    estimate: float
    ci_low: float
    ci_high: float
    method: str
    std_error: float
    n_units: int
    reliability: str | None = field(default=None, compare=False)

    def p_greater(self, margin: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def p_less(self, margin: float) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def p_two_sided(self, margin: float = 0.0) -> float:
        """2 min(p_greater, p_less), capped at 1."""
        return float(min(1.0, 2 * min(self.p_greater(margin), self.p_less(margin))))

    @property
    def p_floor(self) -> float:
        """The smallest one-sided p-value this inference can return, whatever the data:
        0 for analytic tests, 1 / (B + 1) for B bootstrap or Monte Carlo resamples. A
        test at level alpha / K can reject only when ``p_floor < alpha / K``."""
        return 0.0


@dataclass(frozen=True)
class TInference(DeltaInference):
    """Student t with ``df`` degrees of freedom: t = (estimate - m) / SE."""

    df: float = 1.0

    def _t(self, margin: float, alternative: str) -> float:
        diff, se = self.estimate - margin, self.std_error
        if se == 0:
            if diff == 0:
                return 1.0
            return 0.0 if (diff > 0) == (alternative == "greater") else 1.0
        t = diff / se
        return float(special.stdtr(self.df, -t) if alternative == "greater" else special.stdtr(self.df, t))

    def p_greater(self, margin: float) -> float:
        return self._t(margin, "greater")

    def p_less(self, margin: float) -> float:
        return self._t(margin, "less")


@dataclass(frozen=True)
class FiellerInference(DeltaInference):
    """Relative delta r = mean(c) / mean(b) - 1 by Fieller's method (paired units).

    H0: r = m is the paired t-test of the per-unit values c_i - rho b_i with
    rho = 1 + m:

        T(m) = (c_bar - rho b_bar) / sqrt(V(rho) / n),
        V(rho) = s_cc - 2 rho s_cb + rho^2 s_bb,

    on n - 1 degrees of freedom (H1: r > m <=> c_bar - rho b_bar > 0 when b_bar > 0).
    The interval is the set of m that neither one-sided test rejects at (1 - level)/2:
    the rho solving (c_bar - rho b_bar)^2 n = q^2 V(rho), i.e.
    A rho^2 - 2 B rho + C <= 0 with A = n b_bar^2 - q^2 s_bb, B = n c_bar b_bar - q^2 s_cb,
    C = n c_bar^2 - q^2 s_cc: [(B - sqrt(B^2 - A C)) / A, (B + sqrt(B^2 - A C)) / A] - 1
    when A > 0 (the baseline mean is significantly non-zero), else unbounded (reported
    as (-inf, inf)). ``std_error`` is sqrt(V(1 + r) / n) / |b_bar|, the delta-method SE.

    Unlike the delta method's symmetric interval r -+ q SE (whose misses are one-sided
    for skewed metrics: 14% A/A false FAIL at n = 30 on lognormal(sigma = 1.5) values),
    the test at each margin is a t-test of a difference, which is symmetric under an A/A
    comparison or a scale change of the candidate: see ``benchmarks/gate_heavy_tails.py``.

    References
    ----------
    Fieller, E. C. (1954). Some problems in interval estimation. *JRSS B* 16(2), 175-185.
    Franz, V. H. (2007). Ratios: A short guide to confidence limits and proper use.
    arXiv:0710.2024.
    """

    c_bar: float = 0.0
    b_bar: float = 1.0
    s_cc: float = 0.0
    s_bb: float = 0.0
    s_cb: float = 0.0
    df: float = 1.0

    def _t(self, margin: float) -> tuple[float, float]:
        rho = 1.0 + margin
        num = self.c_bar - rho * self.b_bar
        var = max(self.s_cc - 2 * rho * self.s_cb + rho * rho * self.s_bb, 0.0) / self.n_units
        return num, var

    def _p(self, margin: float, sign: float) -> float:
        num, var = self._t(margin)
        # r > m  <=>  num > 0 when b_bar > 0, num < 0 when b_bar < 0
        num = sign * num * (1.0 if self.b_bar > 0 else -1.0)
        if var <= 0:
            return 1.0 if num <= 0 else 0.0
        return float(special.stdtr(self.df, -num / np.sqrt(var)))

    def p_greater(self, margin: float) -> float:
        return self._p(margin, 1.0)

    def p_less(self, margin: float) -> float:
        return self._p(margin, -1.0)


def fieller_inference(candidate: np.ndarray, baseline: np.ndarray, *, confidence: float = 0.95,
                      method: str = "t_test", lower: float = -np.inf) -> FiellerInference:
    """Fieller inference on mean(c) / mean(b) - 1 for paired 1-D per-unit values.

    ``lower`` clips the interval from below (-1 when every value is >= 0: a ratio of
    non-negative means is >= 0); the clipped set keeps the coverage of the unclipped one.

    >>> import numpy as np
    >>> from harness.metrics.stats import fieller_inference
    >>> c, b = np.array([2.0, 3.0, 4.0, 5.0]), np.array([1.0, 2.0, 2.0, 3.0])
    >>> inf = fieller_inference(c, b)
    >>> round(inf.estimate, 4)  # 14 / 8 - 1
    0.75
    >>> round(inf.p_greater(inf.ci_low), 4)  # the bound is where the one-sided test sits at 2.5%
    0.025
    """
    c = np.asarray(candidate, dtype=np.float64)
    b = np.asarray(baseline, dtype=np.float64)
    n = c.size
    cm, bm = float(c.mean()), float(b.mean())
    dc, db = c - cm, b - bm
    s_cc, s_bb, s_cb = float(dc @ dc) / (n - 1), float(db @ db) / (n - 1), float(dc @ db) / (n - 1)
    return fieller_from_moments(cm, bm, s_cc, s_bb, s_cb, n, df=float(n - 1), confidence=confidence,
                                method=method, lower=lower)


def fieller_from_moments(c_bar: float, b_bar: float, s_cc: float, s_bb: float, s_cb: float, n_units: int, *,
                         df: float, confidence: float = 0.95, method: str = "t_test",
                         lower: float = -np.inf) -> FiellerInference:
    """Fieller inference on c_bar / b_bar - 1 from moments: ``s_cc / n``, ``s_bb / n`` and
    ``s_cb / n`` are the variances and covariance of the two means (see
    :class:`FiellerInference`). Paired units give the sample (co)variances of the per-unit
    values; two independent groups (an A/B test) give s_cc = n v_c, s_bb = n v_b, s_cb = 0
    for the squared standard errors v of the two means. ``df`` is the t reference's
    degrees of freedom (``inf``: normal).

    >>> from harness.metrics.stats import fieller_from_moments
    >>> inf = fieller_from_moments(1.5, 1.0, 0.0, 0.0, 0.0, 10, df=9.0)  # no noise: a point
    >>> (round(inf.ci_low, 12), round(inf.ci_high, 12))
    (0.5, 0.5)
    """
    n = n_units
    cm, bm = float(c_bar), float(b_bar)
    r = cm / bm - 1.0
    q = float(special.stdtrit(df, 0.5 + confidence / 2)) if np.isfinite(df) else float(
        special.ndtri(0.5 + confidence / 2))
    rho = 1.0 + r
    se = float(np.sqrt(max(s_cc - 2 * rho * s_cb + rho * rho * s_bb, 0.0) / n) / abs(bm))
    a_ = n * bm * bm - q * q * s_bb
    b_ = n * cm * bm - q * q * s_cb
    c_ = n * cm * cm - q * q * s_cc
    disc = b_ * b_ - a_ * c_
    if a_ > 0 and disc >= 0:
        root = np.sqrt(disc)
        lo, hi = (b_ - root) / a_ - 1.0, (b_ + root) / a_ - 1.0
    else:
        lo, hi = -np.inf, np.inf
    lo = max(lo, lower)
    return FiellerInference(r, float(lo), float(hi), method, se, n, c_bar=cm, b_bar=bm, s_cc=float(s_cc),
                            s_bb=float(s_bb), s_cb=float(s_cb), df=float(df))


@dataclass(frozen=True)
class PercentileInference(DeltaInference):
    """Percentile bootstrap; p-values by duality with the one-sided percentile bound,
    (1 + #{replicates <= m}) / (B + 1) for H1: > m."""

    replicates: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)

    def p_greater(self, margin: float) -> float:
        r = self.replicates
        return float((1 + np.count_nonzero(r <= margin)) / (1 + r.size))

    def p_less(self, margin: float) -> float:
        r = self.replicates
        return float((1 + np.count_nonzero(r >= margin)) / (1 + r.size))

    @property
    def p_floor(self) -> float:
        return 1.0 / (self.replicates.size + 1)


@dataclass(frozen=True)
class BcaInference(PercentileInference):
    """BCa bootstrap (Efron 1987). The p-value of H1: > m is the level alpha at which
    the one-sided BCa lower bound equals m: with z_m = Phi^-1(G(m)) and D = z_m - z0,
    p = Phi(D / (1 + a D) - z0)."""

    z0: float = 0.0
    acceleration: float = 0.0

    def _z(self, margin: float) -> float:
        r = self.replicates
        g = (np.count_nonzero(r < margin) + 0.5 * np.count_nonzero(r == margin)) / r.size
        return self._z_of_g(g)

    def _z_of_g(self, g: float) -> float:
        r = self.replicates
        g = min(max(g, 1.0 / (r.size + 1)), r.size / (r.size + 1))
        d = special.ndtri(g) - self.z0
        denom = 1 + self.acceleration * d
        if denom <= 0:  # beyond the range where the BCa map is monotone
            return np.inf if d > 0 else -np.inf
        return float(d / denom - self.z0)

    def p_greater(self, margin: float) -> float:
        return float(special.ndtr(self._z(margin)))

    def p_less(self, margin: float) -> float:
        return float(special.ndtr(-self._z(margin)))

    @property
    def p_floor(self) -> float:
        # G(m) is clipped to [1/(B+1), B/(B+1)]: the extreme p-values sit at those ends
        return float(min(special.ndtr(self._z_of_g(0.0)), special.ndtr(-self._z_of_g(1.0))))


@dataclass(frozen=True)
class SignFlipInference(DeltaInference):
    """Paired randomisation test of H0: E[u - m v] = 0 with u - m v symmetric per unit.

    For the absolute delta u = d, v = 1; for the relative one u = c - b, v = b (since
    c / b - 1 = m  <=>  c - (1 + m) b = 0). With sign vectors e, the null statistic is
    mean(e (u - m v)) = A_u - m A_v, compared with the observed mean(u) - m mean(v).

    ``weights`` is None for a Monte Carlo test (B random sign vectors, the +1 rule:
    p = (1 + #{hits}) / (B + 1)); otherwise the null distribution is exact and
    ``(a_u, a_v)`` are its distinct support points with their probabilities ``weights``
    (p = sum of the weights of the hits; see :func:`sign_flip_support`).

    Ties. A null statistic counts as a hit when it is at least as extreme as the
    observed one up to the float64 rounding bound of the sums,
    tol = 8 (n + 4) eps (max|u_i| + |m| max|v_i|) (a sum of n terms each below M in
    magnitude is exact to (n - 1) eps n M; Higham 2002, eq. 4.4). Statistics that are
    equal in exact arithmetic (values in thirds, binary metrics) therefore tie exactly,
    as in a full enumeration; distinct statistics closer than tol also count as ties,
    which can only make the test more conservative.
    """

    a_u: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    a_v: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False)
    u_bar: float = 0.0
    v_bar: float = 1.0
    exact: bool = False
    weights: np.ndarray | None = field(default=None, repr=False)
    u_scale: float = 0.0
    v_scale: float = 0.0

    def tolerance(self, margin: float) -> float:
        """Float64 rounding bound of ``A_u - m A_v`` and of the observed statistic."""
        scale = self.u_scale + abs(margin) * self.v_scale
        if scale == 0.0:  # older callers without scales: relative to the statistic
            scale = max(abs(self.u_bar), abs(margin * self.v_bar), 1e-300)
        return 8.0 * (self.n_units + 4) * np.finfo(float).eps * scale

    def _p(self, margin: float, sign: float) -> float:
        obs = self.u_bar - margin * self.v_bar
        null = self.a_u - margin * self.a_v
        tol = self.tolerance(margin)
        # estimand > m  <=>  mean(u - m v) > 0 when mean(v) > 0 (reversed when < 0)
        direction = sign if self.v_bar > 0 else -sign
        hit = direction * (null - obs) >= -tol
        if self.weights is not None:
            return float(min(1.0, self.weights[hit].sum()))
        hits = np.count_nonzero(hit)
        if self.exact:
            return float(hits / null.size)
        return float((1 + hits) / (1 + null.size))

    def p_greater(self, margin: float) -> float:
        return self._p(margin, 1.0)

    def p_less(self, margin: float) -> float:
        return self._p(margin, -1.0)

    @property
    def p_floor(self) -> float:
        if self.weights is not None:
            return float(self.weights.min())
        if self.exact:
            return 1.0 / self.a_u.size
        return 1.0 / (self.a_u.size + 1)


def _invert(inf: DeltaInference, alpha: float, spread: float) -> tuple[float, float]:
    """Interval {m: p_greater(m) > alpha/2 and p_less(m) > alpha/2} by bisection."""
    est = inf.estimate
    step = max(spread, 1e-12 * max(1.0, abs(est)), 1e-300)

    def root(fn: Callable[[float], float], outward: float) -> float:
        inside, far = est, est + outward * step
        for _ in range(60):  # expand until rejected
            if fn(far) <= alpha / 2:
                break
            inside, far = far, far + outward * (far - est)
        else:
            return -np.inf if outward < 0 else np.inf
        for _ in range(80):
            mid = 0.5 * (inside + far)
            if fn(mid) <= alpha / 2:
                far = mid
            else:
                inside = mid
        return 0.5 * (inside + far)

    return root(inf.p_greater, -1.0), root(inf.p_less, 1.0)


# --------------------------------------------------------------------------- resampling


def bootstrap_sums(
    parts: np.ndarray, *, n_resamples: int = 2000, seed: int = 0, weights: str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column sums of ``parts`` under ``n_resamples`` bootstrap weightings.

    The weights come from the harness's one generator, :mod:`harness.metrics._resample`.

    Parameters
    ----------
    parts : ndarray of shape (n_units, k)
    weights : {"auto", "multinomial", "poisson"}
        ``multinomial``: counts of a resample with replacement, the index stream
        ``rng.integers(0, n, (b, n))`` of ``scipy.stats.bootstrap`` for the same seed;
        ``poisson``: independent Poisson(1) weights, drawn per block of units;
        ``auto``: multinomial up to ``MULTINOMIAL_MAX_UNITS`` units.

    Returns
    -------
    sums : ndarray of shape (n_resamples, k)
        sum_i w_bi parts_i.
    totals : ndarray of shape (n_resamples,)
        sum_i w_bi (n for multinomial weights).
    """
    arr = _as_2d(parts, "parts")
    scheme = resolve_scheme(weights, arr.shape[0])
    return weighted_sums(arr, n_resamples, seed=seed, scheme=scheme)


def bootstrap_mean_replicates(
    values: np.ndarray, *, n_resamples: int = 2000, seed: int = 0, weights: str = "auto"
) -> np.ndarray:
    """Resampled means of ``values`` (n_units, n_metrics): shape (n_resamples, n_metrics).

    One resample of the units serves every column, which keeps their correlation.
    """
    sums, totals = bootstrap_sums(values, n_resamples=n_resamples, seed=seed, weights=weights)
    return sums / totals[:, None]


@dataclass(frozen=True)
class Estimand:
    """``combine`` applied to the sums of columns ``cols`` of a shared parts matrix;
    ``bounds`` its range (intervals are intersected with it), or None;
    ``resample_combine`` the statistic of a resample when it differs (see
    :class:`SumStatistic`)."""

    cols: np.ndarray
    combine: Combine
    bounds: tuple[float, float] | None = None
    resample_combine: Combine | None = None


def _jackknife(parts: np.ndarray, est: Estimand, block: int = 1 << 16) -> np.ndarray:
    """Leave-one-out values combine(S - parts_i, n - 1), in blocks of units."""
    sub = parts[:, est.cols]
    total = sub.sum(axis=0)
    n = sub.shape[0]
    out = np.empty(n)
    for start in range(0, n, block):
        out[start : start + block] = est.combine(total - sub[start : start + block], np.float64(n - 1))
    return out


def _acceleration(jack: np.ndarray) -> float:
    u = jack.mean() - jack
    u2 = u * u  # products, not pow: 40x faster on millions of units
    den = 6.0 * float(u2.sum()) ** 1.5
    return float(np.dot(u2, u) / den) if den > 0 else 0.0


def bootstrap_estimands(
    parts: np.ndarray,
    estimands: Sequence[Estimand],
    *,
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: str = "auto",
) -> list[DeltaInference]:
    """Percentile (``method="bootstrap"``) or BCa (``"bca"``) inference for several
    estimands over one shared resample of the units.

    Notes
    -----
    Percentile: the alpha/2 and 1 - alpha/2 quantiles of the replicates. BCa: the
    quantiles at Phi(z0 + (z0 + z)/(1 - a (z0 + z))) for z = z_{alpha/2}, z_{1-alpha/2},
    with z0 = Phi^-1(mid-rank of the estimate among the replicates) and the
    acceleration a = sum(u^3) / (6 (sum u^2)^1.5) from jackknife values u
    (Efron & Tibshirani 1993, eq. 14.15), as ``scipy.stats.bootstrap`` computes them.
    """
    check_choice(method, BOOTSTRAP_METHODS, name="method")
    _check_level(confidence, n_resamples)
    arr = _as_2d(parts, "parts")
    n = arr.shape[0]
    sums, totals = bootstrap_sums(arr, n_resamples=n_resamples, seed=seed, weights=weights)
    full = arr.sum(axis=0)
    thetas = [float(est.combine(full[est.cols], np.float64(n))) for est in estimands]
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = [np.asarray((est.resample_combine or est.combine)(sums[:, est.cols], totals), dtype=np.float64)
                for est in estimands]
    if method == "bootstrap" and estimands:
        # every estimand in one pass (tens of metrics, thousands of calls in a simulation)
        return [clip_interval(inference, est.bounds) for est, inference in
                zip(estimands, _percentile_inferences(thetas, np.vstack(reps), n, method, confidence))]
    return [clip_interval(_from_replicates(theta, r, n, method, confidence, lambda est=est: _jackknife(arr, est)),
                          est.bounds)
            for est, theta, r in zip(estimands, thetas, reps)]


def _percentile_inferences(thetas: Sequence[float], table: np.ndarray, n: int, method: str,
                           confidence: float) -> list[PercentileInference]:
    """Percentile intervals of estimands whose bootstrap replicates are the rows of
    ``table``: one quantile and one standard-deviation call over the whole table, the
    same numbers, bit for bit, as one row at a time without numpy's per-call overhead."""
    for theta, reps in zip(thetas, table):
        _check_defined(theta, reps)
    alpha = 1 - confidence
    low, high = np.quantile(table, [alpha / 2, 1 - alpha / 2], axis=1)
    ses = table.std(axis=1, ddof=1)
    return [PercentileInference(theta, float(lo), float(hi), method, float(se), n, replicates=reps)
            for theta, reps, lo, hi, se in zip(thetas, table, low, high, ses)]


def _check_defined(theta: float, reps: np.ndarray) -> None:
    if not np.isfinite(reps).all() or not np.isfinite(theta):
        raise DataValidationError(
            f"bootstrap: the statistic is undefined (division by zero?) on "
            f"{int((~np.isfinite(reps)).sum())} of {reps.size} resamples")


def _from_replicates(theta: float, reps: np.ndarray, n: int, method: str, confidence: float,
                     jackknife: Callable[[], np.ndarray]) -> DeltaInference:
    """Percentile or BCa inference from bootstrap replicates (jackknife values on demand)."""
    if method == "bootstrap":
        return _percentile_inferences([theta], reps[np.newaxis], n, method, confidence)[0]
    _check_defined(theta, reps)
    alpha = 1 - confidence
    se = float(reps.std(ddof=1))
    if np.ptp(reps) <= 1e-12 * max(1.0, abs(theta)):
        z0 = a = 0.0  # no spread (e.g. identical models): BCa is the percentile interval
    else:
        mid = (np.count_nonzero(reps < theta) + np.count_nonzero(reps <= theta)) / (2 * reps.size)
        # every replicate on one side of the estimate: the rank is clipped to 1/(2B)
        mid = min(max(mid, 0.5 / reps.size), 1 - 0.5 / reps.size)
        z0 = float(special.ndtri(mid))
        a = _acceleration(jackknife())
    z = special.ndtri(np.array([alpha / 2, 1 - alpha / 2]))
    levels = special.ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    if not np.isfinite(levels).all() or (1 - a * (z0 + z) <= 0).any():
        raise DataValidationError(f"bca: the acceleration {a:.3g} is too large for a BCa interval at "
                                  f"confidence {confidence}; use method 'bootstrap'")
    lo, hi = np.quantile(reps, levels)
    return BcaInference(theta, float(lo), float(hi), method, se, n, replicates=reps, z0=z0, acceleration=a)


def bootstrap_statistics(
    statistics: Sequence[SumStatistic], *, method: str = "bootstrap", confidence: float = 0.95,
    n_resamples: int = 2000, seed: int = 0, weights: str = "auto",
) -> list[DeltaInference]:
    """Bootstrap inference for ``SumStatistic``s of the same units, one shared resample."""
    if not statistics:
        return []
    n = {s.n_units for s in statistics}
    if len(n) != 1:
        raise DataValidationError(f"statistics: all must cover the same units, got unit counts {sorted(n)}")
    parts = np.hstack([s.parts for s in statistics])
    bounds = np.cumsum([0] + [s.parts.shape[1] for s in statistics])
    ests = [Estimand(np.arange(bounds[i], bounds[i + 1]), s.combine, s.bounds, s.resample_combine)
            for i, s in enumerate(statistics)]
    return bootstrap_estimands(parts, ests, method=method, confidence=confidence,
                               n_resamples=n_resamples, seed=seed, weights=weights)


# Largest n for which the BCa jackknife of a WeightedStatistic (n calls on n weights) runs.
WEIGHTED_JACKKNIFE_MAX_UNITS = 20_000


@dataclass(frozen=True)
class WeightedStatistic:
    """Any statistic that takes unit weights: ``fn(weights)`` with weights of shape
    (b, n_units) returns (b,) values; a row of ones gives the estimate itself.

    For statistics that are not functions of column sums: AUC, calibration slope and
    intercept (a weighted logistic fit), quantiles. Resample weights are the bootstrap
    counts, so ``fn`` must treat a weight of k as k copies of the unit.

    >>> import numpy as np
    >>> from harness.metrics.stats import WeightedStatistic
    >>> x = np.array([1.0, 2.0, 3.0, 10.0])
    >>> WeightedStatistic(lambda w: (w * x).sum(1) / w.sum(1), 4).value()
    4.0
    """

    fn: Callable[[np.ndarray], np.ndarray]
    n_units: int
    name: str = "statistic"
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.n_units < 2:
            raise DataValidationError(f"{self.name}: need at least 2 units, got {self.n_units}")
        object.__setattr__(self, "bounds", check_bounds(self.bounds, name=f"{self.name} bounds"))

    def value(self) -> float:
        return float(np.asarray(self.fn(np.ones((1, self.n_units))))[0])


def bootstrap_weighted(
    statistics: Sequence[WeightedStatistic], *, method: str = "bootstrap", confidence: float = 0.95,
    n_resamples: int = 2000, seed: int = 0, weights: str = "auto",
) -> list[DeltaInference]:
    """Percentile or BCa inference for ``WeightedStatistic``s over one shared resample.

    BCa needs the jackknife, n calls of ``fn`` on leave-one-out weights: refused above
    ``WEIGHTED_JACKKNIFE_MAX_UNITS`` units (use ``method="bootstrap"`` there).
    """
    check_choice(method, BOOTSTRAP_METHODS, name="method")
    _check_level(confidence, n_resamples)
    if not statistics:
        return []
    sizes = {s.n_units for s in statistics}
    if len(sizes) != 1:
        raise DataValidationError(f"statistics: all must cover the same units, got unit counts {sorted(sizes)}")
    n = sizes.pop()
    if method == "bca" and n > WEIGHTED_JACKKNIFE_MAX_UNITS:
        raise ConfigError(f"method: 'bca' on a weighted statistic needs a jackknife of {n} fits "
                          f"(limit {WEIGHTED_JACKKNIFE_MAX_UNITS}); use 'bootstrap'")
    reps = np.empty((len(statistics), n_resamples))
    with np.errstate(divide="ignore", invalid="ignore"):
        scheme = resolve_scheme(weights, n)
        for start, block in weight_blocks(n, n_resamples, seed=seed, scheme=scheme):
            for i, s in enumerate(statistics):
                reps[i, start : start + len(block)] = s.fn(block)

    def jackknife(s: WeightedStatistic) -> np.ndarray:
        out = np.empty(n)
        step = max(1, MAX_CELLS // n)
        for lo in range(0, n, step):
            rows = np.ones((min(step, n - lo), n))
            rows[np.arange(rows.shape[0]), lo + np.arange(rows.shape[0])] = 0.0
            out[lo : lo + rows.shape[0]] = s.fn(rows)
        return out

    return [clip_interval(_from_replicates(s.value(), reps[i], n, method, confidence, lambda s=s: jackknife(s)),
                          s.bounds) for i, s in enumerate(statistics)]


def paired_weighted_difference(candidate: WeightedStatistic, baseline: WeightedStatistic,
                               *, relative: bool = False) -> WeightedStatistic:
    """candidate - baseline (or candidate / baseline - 1) under the same unit weights."""
    if candidate.n_units != baseline.n_units:
        raise DataValidationError(f"{candidate.name}: candidate has {candidate.n_units} units, baseline "
                                  f"{baseline.n_units}; a paired comparison needs the same units")
    if relative:
        return WeightedStatistic(lambda w: candidate.fn(w) / baseline.fn(w) - 1.0, candidate.n_units,
                                 f"{candidate.name} / {baseline.name} - 1",
                                 relative_bounds(candidate.bounds, baseline.bounds))
    return WeightedStatistic(lambda w: candidate.fn(w) - baseline.fn(w), candidate.n_units,
                             f"{candidate.name} - {baseline.name}", difference_bounds(candidate.bounds, baseline.bounds))


def sign_flip_means(
    columns: np.ndarray, *, n_resamples: int = 10_000, seed: int = 0
) -> tuple[np.ndarray, bool]:
    """mean(e * column) for random (or, for n <= EXACT_SIGN_FLIP_MAX_UNITS, all 2^n)
    sign vectors e. Returns (array of shape (n_flips, k), exact).

    The sums are float64 throughout (signs are exact, products with them too), so that
    statistics equal in exact arithmetic stay within ``SignFlipInference.tolerance``.
    """
    arr = _as_2d(columns, "columns")
    n, k = arr.shape
    if n <= EXACT_SIGN_FLIP_MAX_UNITS:
        codes = np.arange(1 << n)[:, None] >> np.arange(n)[None, :] & 1
        return (1.0 - 2.0 * codes) @ arr / n, True
    rng = np.random.default_rng(seed)
    out = np.zeros((n_resamples, k))
    block = max(8, (MAX_CELLS // n_resamples) // 8 * 8)
    for start in range(0, n, block):
        u = min(block, n - start)
        nbytes = (u + 7) // 8
        bits = np.unpackbits(np.frombuffer(rng.bytes(n_resamples * nbytes), dtype=np.uint8)
                             .reshape(n_resamples, nbytes), axis=1, count=u)
        out += (1.0 - 2.0 * bits.astype(np.float64)) @ arr[start : start + u]
    return out / n, False


def sign_flip_support(
    u: np.ndarray, v: np.ndarray, *, max_support: int = EXACT_SIGN_FLIP_MAX_SUPPORT
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Exact null distribution of (mean(e u), mean(e v)) over all 2^n sign vectors e.

    Units whose pairs (u_i, v_i) agree up to a joint sign are exchangeable under sign
    flips: a group of c such units with value x contributes (c - 2 j) x, where the
    number j of minus signs is Binomial(c, 1/2). The null distribution is therefore the
    convolution over the G groups, with prod_g (c_g + 1) support points instead of 2^n:
    exact in seconds for tied data (values in thirds, binary metrics) at any n with few
    distinct values, and for untied data up to n = log2(max_support).

    Parameters
    ----------
    u, v : ndarray of shape (n,)
    max_support : int
        Refuse (return None) when prod_g (c_g + 1) exceeds it.

    Returns
    -------
    (a_u, a_v, weights) or None
        Support points of the null means and their probabilities (summing to 1).

    Notes
    -----
    Pairs are grouped after rounding to 4 ulps of max|u| (and of max|v|), so that values
    equal in exact arithmetic but computed along different paths (2/3 - 1/3 and 1/3)
    share a group; this moves the statistic by less than ``SignFlipInference.tolerance``.
    Units with u_i = v_i = 0 contribute nothing and are dropped.

    References
    ----------
    Fisher (1935), *The Design of Experiments*, sec. 21 (the sign-flip test).
    Pratt (1959), *JASA* 54, 655-667 (zero differences in the signed test).

    Examples
    --------
    40 queries, deltas in thirds: 11 up, 4 down, 25 equal. P(mean(e d) >= mean(d)) =
    P(Binomial(15, 1/2) >= 11) = 1941 / 32768:

    >>> import numpy as np
    >>> from harness.metrics.stats import sign_flip_support
    >>> d = np.r_[np.full(11, 1 / 3), np.full(4, -1 / 3), np.zeros(25)]
    >>> a_u, a_v, w = sign_flip_support(d, np.ones(40))
    >>> float(w[a_u >= d.mean() - 1e-12].sum()) * 32768
    1941.0
    """
    u = np.asarray(u, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    n = u.size
    su, sv = float(np.abs(u).max(initial=0.0)), float(np.abs(v).max(initial=0.0))
    qu = 4 * np.finfo(float).eps * su or 1.0
    qv = 4 * np.finfo(float).eps * sv or 1.0
    key = np.column_stack([np.round(u / qu), np.round(v / qv)])
    # a pair and its negative are one group: make the first non-zero coordinate positive
    flip = (key[:, 0] < 0) | ((key[:, 0] == 0) & (key[:, 1] < 0))
    key[flip] *= -1
    key = key[(key != 0).any(axis=1)]
    groups, counts = np.unique(key, axis=0, return_counts=True)
    size = float(np.prod(counts.astype(np.float64) + 1.0))
    if size > max_support:
        return None
    a_u, a_v, w = np.zeros(1), np.zeros(1), np.ones(1)
    for (gu, gv), c in zip(groups, counts):  # one pass per distinct value, not per unit
        s = c - 2.0 * np.arange(c + 1)
        pmf = np.array([math.comb(int(c), j) for j in range(c + 1)], dtype=np.float64) / 2.0 ** c
        a_u = (a_u[:, None] + s * (gu * qu)).ravel()
        a_v = (a_v[:, None] + s * (gv * qv)).ravel()
        w = (w[:, None] * pmf).ravel()
    return a_u / n, a_v / n, w


# --------------------------------------------------------------------------- mean metrics


def bootstrap_if_defined(parts: np.ndarray, estimand: "Estimand | None", options: dict) -> "DeltaInference | None":
    """The bootstrap inference of one estimand, or None when there is none or it is
    undefined on some resample (e.g. a relative delta over a baseline that resamples to 0)."""
    if estimand is None:
        return None
    try:
        return bootstrap_estimands(parts, [estimand], **options)[0]
    except DataValidationError:
        return None


class SkewWarning(UserWarning):
    """A metric's skew makes the chosen interval method unreliable at this sample size."""


@dataclass(frozen=True)
class SkewCheck:
    """Sample skewness ``g1`` of per-unit values and the units the normal approximation of
    their mean needs: ``n_needed = 28 + 25 g1^2`` (Cochran's rule as refined by Sugden,
    Smith & Jones 2000); ``ok`` when ``n_units >= n_needed``."""

    g1: float
    n_units: int
    n_needed: float

    @property
    def ok(self) -> bool:
        return self.n_units >= self.n_needed


def skew_check(values: np.ndarray) -> list[SkewCheck]:
    """Cochran/Sugden check of each column of ``values`` (n_units, k).

    g1 = m3 / m2^1.5 (moment estimator), n_needed = 28 + 25 g1^2.

    References
    ----------
    Cochran, W. G. (1977). *Sampling Techniques*, 3rd ed., sec. 2.15.
    Sugden, R. A., Smith, T. M. F. & Jones, R. P. (2000). Cochran's rule for simple
    random sampling. *JRSS B* 62(4), 787-793.

    >>> import numpy as np
    >>> from harness.metrics.stats import skew_check
    >>> [round(c.n_needed, 1) for c in skew_check(np.array([0.0, 0.0, 0.0, 1.0]))]  # g1 = 1.1547
    [61.3]
    """
    x = _as_2d(values, "values")
    dev = x - x.mean(axis=0)
    m2 = (dev * dev).mean(axis=0)
    m3 = (dev * dev * dev).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g1 = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
    return [SkewCheck(float(g), x.shape[0], float(28 + 25 * g * g)) for g in g1]


def metric_kind(candidate: np.ndarray, baseline: np.ndarray) -> str:
    """``"regular"`` when every per-unit value of both sides lies in [0, 1] (nDCG,
    recall, hit rate, CTR: a bounded range caps the skew) and passes
    :func:`skew_check`; else ``"skewed"`` (revenue, watch time, counts, and rare binary
    outcomes at small n). ``DEFAULT_METHOD_BY_KIND`` maps the kind to a method.

    Unbounded metrics are "skewed" whatever their sample skewness: the sample skewness
    of heavy-tailed data is biased low (lognormal(0, 1.5): population skewness 33,
    sample skewness at n = 300 often 3-6), so it cannot clear them.
    """
    both = np.column_stack([np.ravel(candidate), np.ravel(baseline)])
    bounded = bool(((both >= 0) & (both <= 1)).all())
    return "regular" if bounded and all(c.ok for c in skew_check(both)) else "skewed"


def infer_paired_means(
    candidate: np.ndarray,
    baseline: np.ndarray,
    *,
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: str = "auto",
    bounds: Sequence[tuple[float, float] | None] | None = None,
) -> tuple[list[DeltaInference], list[DeltaInference | None]]:
    """Absolute and relative paired differences of column means.

    Parameters
    ----------
    candidate, baseline : ndarray of shape (n_units,) or (n_units, n_metrics)
        Per-unit metric values on the same units, in the same order.
    method : {"bootstrap", "bca", "t_test", "randomization", "auto"}
        ``"auto"``: per metric, ``DEFAULT_METHOD_BY_KIND[metric_kind(c, b)]`` (the
        percentile bootstrap for bounded, moderately skewed metrics, the t-test and
        Fieller for the others; see ``docs/ci-gate.md`` for the simulations behind it).
    bounds : sequence of (low, high) or None, one per metric, optional
        The range of each metric's values (e.g. (0, 1) for nDCG). The interval of the
        absolute delta is intersected with :func:`difference_bounds` ([-1, 1] for two
        [0, 1] metrics), that of the relative delta with :func:`relative_bounds`
        ([-1, inf) for non-negative metrics); see :func:`clip_interval`.

    Returns
    -------
    absolute : list of inferences on mean(c) - mean(b), one per metric
    relative : list of inferences on mean(c) / mean(b) - 1 (None where mean(b) == 0)

    Notes
    -----
    t: d_bar -+ t_{1-a/2, n-1} sd(d) / sqrt(n); relative by Fieller's method (see
    :class:`FiellerInference`): the t-test of c_i - (1 + m) b_i at each margin m, inverted.
    Bootstrap: the ratio of resampled sums, so the baseline's noise counts.
    Randomisation: sign flips of d_i (absolute) or of c_i - (1 + m) b_i (relative),
    the interval by test inversion; exact when the units' distinct values allow
    (:func:`sign_flip_support`).

    A bootstrap inference on a metric failing :func:`skew_check` (either side) carries
    a ``reliability`` note (the gate turns it into a ``SkewWarning``): in A/A
    simulations of lognormal(sigma = 1.5) values the percentile and BCa intervals of
    the relative delta falsely FAIL 9-13% of the time at n = 100-1000.
    """
    check_choice(method, METHODS, name="method")
    _check_level(confidence, n_resamples)
    c = _as_2d(candidate, "candidate")
    b = _as_2d(baseline, "baseline")
    if c.shape != b.shape:
        raise DataValidationError(f"candidate {c.shape} and baseline {b.shape} must have the same shape")
    options = dict(confidence=confidence, n_resamples=n_resamples, seed=seed, weights=weights)
    m = c.shape[1]
    checks = skew_check(c) + skew_check(b)  # no copy of both tables side by side
    skewed = [not (checks[j].ok and checks[m + j].ok) for j in range(m)]
    if method == "auto":
        bounded = ((c >= 0) & (c <= 1)).all(axis=0) & ((b >= 0) & (b <= 1)).all(axis=0)
        # the kind of metric_kind(c[:, j], b[:, j]), from the checks already made
        chosen = [DEFAULT_METHOD_BY_KIND["regular" if bounded[j] and not skewed[j] else "skewed"]
                  for j in range(m)]
        absolute: list[DeltaInference] = [None] * m  # type: ignore[list-item]
        relative: list[DeltaInference | None] = [None] * m
        for used in dict.fromkeys(chosen):
            cols = [j for j in range(m) if chosen[j] == used]
            abs_, rel_ = _infer_paired_means(c[:, cols], b[:, cols], method=used, **options)
            for j, a_, r_ in zip(cols, abs_, rel_):
                absolute[j], relative[j] = a_, r_
    else:
        absolute, relative = _infer_paired_means(c, b, method=method, **options)
    for j in range(m):
        if skewed[j] and absolute[j].method in BOOTSTRAP_METHODS:
            worst = max(checks[j], checks[m + j], key=lambda k: k.n_needed)
            note = (f"skewed per-unit values (skewness {worst.g1:.3g}): the {absolute[j].method} interval "
                    f"needs about {worst.n_needed:,.0f} units to hold its level (Cochran/Sugden rule), "
                    f"there are {worst.n_units:,}; use method t_test (Fieller for relative deltas)")
            absolute[j] = dataclasses.replace(absolute[j], reliability=note)
            if relative[j] is not None:
                relative[j] = dataclasses.replace(relative[j], reliability=note)
    ranges = _column_bounds(bounds, m)
    absolute = [clip_interval(a, difference_bounds(r, r)) for a, r in zip(absolute, ranges)]
    relative = [None if rel is None else clip_interval(rel, relative_bounds(r, r)) for rel, r in zip(relative, ranges)]
    return absolute, relative


def _column_bounds(bounds: Sequence[tuple[float, float] | None] | None, m: int) -> list[tuple[float, float] | None]:
    if bounds is None:
        return [None] * m
    out = list(bounds)
    if len(out) != m:
        raise ConfigError(f"bounds: expected one (low, high) or None per metric ({m}), got {len(out)}")
    return [check_bounds(b) for b in out]


def _infer_paired_means(
    c: np.ndarray, b: np.ndarray, *, method: str, confidence: float, n_resamples: int, seed: int, weights: str,
) -> tuple[list[DeltaInference], list[DeltaInference | None]]:
    """:func:`infer_paired_means` for one concrete method (not ``"auto"``) on its checked
    2-D inputs, no checks of skew."""
    n, m = c.shape
    b_mean = b.mean(axis=0)
    has_rel = b_mean != 0
    alpha = 1 - confidence
    if method in BOOTSTRAP_METHODS:
        parts = np.empty((n, 2 * m))
        np.subtract(c, b, out=parts[:, :m])
        parts[:, m:] = b
        ests = [Estimand(np.array([j]), lambda s, t: s[..., 0] / t) for j in range(m)]
        # (sum d + sum b) / sum b - 1 == sum c / sum b - 1
        rel_ests = {j: Estimand(np.array([j, m + j]), lambda s, t: s[..., 0] / s[..., 1])
                    for j in range(m) if has_rel[j]}
        options = dict(method=method, confidence=confidence, n_resamples=n_resamples, seed=seed, weights=weights)
        try:
            infs = bootstrap_estimands(parts, ests + list(rel_ests.values()), **options)
            rel_iter = iter(infs[m:])
            return infs[:m], [next(rel_iter) if has_rel[j] else None for j in range(m)]
        except DataValidationError:
            # a relative delta undefined on some resample (a baseline mean of 0 there) has no
            # interval; the absolute deltas are always defined (same seed: same resamples)
            absolute_infs = bootstrap_estimands(parts, ests, **options)
            return absolute_infs, [bootstrap_if_defined(parts, rel_ests.get(j), options) for j in range(m)]
    d = c - b
    if method == "t_test":
        q = special.stdtrit(n - 1, 1 - alpha / 2)
        absolute: list[DeltaInference] = []
        relative: list[DeltaInference | None] = []
        for j in range(m):
            mean, se = float(d[:, j].mean()), float(d[:, j].std(ddof=1) / np.sqrt(n))
            absolute.append(TInference(mean, mean - q * se, mean + q * se, method, se, n, df=n - 1))
            if not has_rel[j]:
                relative.append(None)
                continue
            nonneg = bool((c[:, j] >= 0).all() and (b[:, j] >= 0).all())
            relative.append(fieller_inference(c[:, j], b[:, j], confidence=confidence, method=method,
                                              lower=-1.0 if nonneg else -np.inf))
        return absolute, relative
    ones = np.ones(n)
    shared: list[np.ndarray] = []

    def monte_carlo() -> tuple[np.ndarray, bool]:
        """One Monte Carlo sample of sign vectors for every column that needs it."""
        if not shared:
            flips, exact = sign_flip_means(np.hstack([d, b, ones[:, None]]), n_resamples=n_resamples, seed=seed)
            shared.extend([flips, np.array(exact)])
        return shared[0], bool(shared[1])

    def null(u: np.ndarray, v: np.ndarray, cu: int, cv: int) -> dict:
        support = sign_flip_support(u, v)
        if support is not None:
            a_u, a_v, w = support
            return dict(a_u=a_u, a_v=a_v, weights=w, exact=True)
        flips, exact = monte_carlo()
        return dict(a_u=flips[:, cu], a_v=flips[:, cv], weights=None, exact=exact)

    absolute, relative = [], []
    for j in range(m):
        dj = d[:, j]
        mean = float(dj.mean())
        # SD of mean(e d) over uniform sign vectors: sqrt(sum d^2) / n
        se = float(np.sqrt(dj @ dj) / n)
        d_scale = float(np.abs(dj).max())
        # H0 delta = m  <=>  mean(d - m) = 0: null statistic a_d - m mean(e)
        inf = SignFlipInference(mean, np.nan, np.nan, method, se, n, u_bar=mean, v_bar=1.0,
                                u_scale=d_scale, v_scale=1.0, **null(dj, ones, j, 2 * m))
        absolute.append(_with_interval(inf, alpha))
        if not has_rel[j]:
            relative.append(None)
            continue
        r = float(c[:, j].mean() / b_mean[j] - 1)
        # H0 rel = m  <=>  mean(d - m b) = 0: null statistic a_d - m a_b
        rinf = SignFlipInference(r, np.nan, np.nan, method, se / abs(float(b_mean[j])), n, u_bar=mean,
                                 v_bar=float(b_mean[j]), u_scale=d_scale, v_scale=float(np.abs(b[:, j]).max()),
                                 **null(dj, b[:, j], j, m + j))
        relative.append(_with_interval(rinf, alpha))
    return absolute, relative


def _with_interval(inf: SignFlipInference, alpha: float) -> SignFlipInference:
    """The interval of a randomisation test: the margins it does not reject.

    Flip b counts for H1 "> m" when (A_u,b - u_bar) - m (A_v,b - v_bar) >= 0. When every
    slope g_b = A_v,b - v_bar is <= 0 (always for the absolute delta, and for the
    relative one when the baseline values are >= 0) each flip counts from its threshold
    t_b = (A_u,b - u_bar) / g_b on, so the bounds are (weighted) order statistics of
    t_b; otherwise the p-value functions are inverted by bisection.
    """
    a = inf.a_u - inf.u_bar
    g = inf.a_v - inf.v_bar
    flat = np.abs(g) <= 1e-12 * max(abs(inf.v_bar), 1.0)
    if inf.v_bar > 0 and (g[~flat] < 0).all():
        lo, hi = _sign_flip_bounds(a, g, flat, alpha, inf.weights, inf.exact)
    else:
        lo, hi = _invert(inf, alpha, 4 * inf.std_error)
    return dataclasses.replace(inf, ci_low=lo, ci_high=hi)


def _sign_flip_bounds(a: np.ndarray, g: np.ndarray, flat: np.ndarray, alpha: float,
                      weights: np.ndarray | None, exact: bool) -> tuple[float, float]:
    """Bounds from p_greater(m) = (extra + W(flat, a >= 0) + W(t <= m)) / D and
    p_less(m) = (extra + W(flat, a <= 0) + W(t >= m)) / D, with W the weights (counts
    for Monte Carlo, extra = 1, D = B + 1; probabilities for an exact test, D = 1)."""
    w = np.ones(a.size) if weights is None else weights
    monte_carlo = weights is None and not exact
    denom = a.size + 1.0 if monte_carlo else (1.0 if weights is not None else float(a.size))
    extra = 1.0 if monte_carlo else 0.0  # the observed labelling, counted once in Monte Carlo p-values
    tiny = 1e-9 if weights is None else 1e-12
    t = a[~flat] / g[~flat]
    order = np.argsort(t, kind="stable")
    ts, ws = t[order], w[~flat][order]
    level_lo = alpha / 2 * denom - extra - w[flat][a[flat] >= 0].sum() + tiny
    level_hi = alpha / 2 * denom - extra - w[flat][a[flat] <= 0].sum() + tiny
    i_lo = int(np.searchsorted(np.cumsum(ws), level_lo, side="right"))
    i_hi = int(np.searchsorted(np.cumsum(ws[::-1]), level_hi, side="right"))
    lo = ts[i_lo] if level_lo >= 0 and i_lo < ts.size else -np.inf
    hi = ts[::-1][i_hi] if level_hi >= 0 and i_hi < ts.size else np.inf
    return float(lo), float(hi)


def infer_paired_deltas(
    deltas: np.ndarray,
    *,
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: str = "auto",
) -> list[DeltaInference]:
    """Interval and tests for the mean of each column of paired deltas (candidate -
    baseline per unit); see :func:`infer_paired_means` for the methods."""
    d = _as_2d(deltas, "deltas")
    absolute, _ = infer_paired_means(d, np.zeros_like(d), method=method, confidence=confidence,
                                     n_resamples=n_resamples, seed=seed, weights=weights)
    return absolute


def mean_confidence_interval(values: np.ndarray, *, confidence: float = 0.95,
                             bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """Student-t interval for the mean of per-unit values: mean -+ t * sd / sqrt(n).

    ``bounds``: the metric's range, e.g. (0, 1) for nDCG or (0, inf) for revenue; the
    interval is intersected with it (a confidence set intersected with the parameter
    space keeps its coverage), so a non-negative metric's interval never goes below 0.

    >>> import numpy as np
    >>> from harness.metrics.stats import mean_confidence_interval
    >>> mean_confidence_interval(np.array([0.0, 0.0, 0.0, 0.2]), bounds=(0.0, 1.0))[0]
    0.0
    """
    arr = np.asarray(values, dtype=np.float64)
    mean, std = (arr.mean(), arr.std(ddof=1)) if arr.size >= 2 else (float("nan"), float("nan"))
    return moments_confidence_interval(arr.size, mean, std, confidence=confidence, bounds=bounds)


def moments_confidence_interval(n: int, mean: float, std: float, *, confidence: float = 0.95,
                                bounds: tuple[float, float] | None = None) -> tuple[float, float]:
    """:func:`mean_confidence_interval` from the values' count, mean and sample standard
    deviation (``ddof=1``), e.g. aggregates computed where the values are: NaN bounds
    under two values."""
    confidence = check_confidence(confidence)
    bounds = check_bounds(bounds)
    if n < 2:
        return float("nan"), float("nan")
    half = special.stdtrit(n - 1, 0.5 + confidence / 2) * std / np.sqrt(n)
    low, high = float(mean - half), float(mean + half)
    if bounds is not None:
        low, high = max(low, float(bounds[0])), min(high, float(bounds[1]))
    return low, high


# --------------------------------------------------------------------------- multiplicity


def holm_adjust(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control).

    p_adj(i) = max_{j <= i} min(1, (m - j + 1) p_(j)) over the sorted p-values.

    >>> import numpy as np
    >>> from harness.metrics.stats import holm_adjust
    >>> holm_adjust(np.array([0.01, 0.04, 0.03, 0.005]))
    array([0.03, 0.06, 0.06, 0.02])
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
    """Benjamini-Hochberg adjusted p-values (false discovery rate control):
    p_adj(i) = min_{j >= i} min(1, m p_(j) / j)."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * (p.size / np.arange(1, p.size + 1))
    np.minimum.accumulate(scaled[::-1], out=scaled[::-1])
    out = np.empty_like(scaled)
    out[order] = scaled
    return np.clip(out, 0.0, 1.0)


CORRECTIONS = ("holm", "bh", "none")


def adjust_p_values(p_values: np.ndarray, correction: str) -> np.ndarray:
    """Apply ``"holm"`` (default of the gate), ``"bh"`` or ``"none"``."""
    if correction == "holm":
        return holm_adjust(p_values)
    if correction == "bh":
        return bh_adjust(p_values)
    check_choice(correction, CORRECTIONS, name="correction")
    return np.asarray(p_values, dtype=np.float64)


# --------------------------------------------------------------------------- resample floor


class ResampleFloorWarning(UserWarning):
    """The resample count is too small for a test of the gate ever to reach its level."""


def smallest_level(alpha: float, family_size: int, correction: str) -> float:
    """The level the most significant test of a family of K must beat to reject.

    alpha / K for ``"holm"`` (its first step) and ``"bh"`` (when a single hypothesis is
    false, BH's first step is Bonferroni's too); alpha for ``"none"`` and for the
    intersection-union pass side.

    >>> from harness.metrics.stats import smallest_level
    >>> smallest_level(0.05, 6, "holm")
    0.008333333333333333
    """
    check_choice(correction, CORRECTIONS, name="correction")
    if correction == "none":
        return float(alpha)
    return float(alpha) / max(int(family_size), 1)


def resamples_to_reach(level: float) -> int:
    """Smallest B whose floor 1 / (B + 1) is below ``level``: B = floor(1 / level).

    >>> from harness.metrics.stats import resamples_to_reach
    >>> resamples_to_reach(0.05 / 6)  # 1/121 < 0.00833 <= 1/120
    120
    """
    level = check_probability(level, name="level", low_open=True, high_open=True)
    return int(np.floor(1.0 / level + 1e-9))


def recommended_resamples(family_size: int, alpha: float = 0.05, *, correction: str = "holm",
                          minimum: int = 2000, tail_hits: int = 20) -> int:
    """Resample count for a gate of ``family_size`` tests (criteria x candidates).

    B = max(minimum, ceil(tail_hits / level) - 1) with level =
    :func:`smallest_level`: a p-value at the strictest level is then estimated from
    about ``tail_hits`` replicates beyond the margin (Monte Carlo relative SE
    1 / sqrt(tail_hits), 22% at 20), and the floor 1 / (B + 1) is 20x below it.

    >>> from harness.metrics.stats import recommended_resamples
    >>> recommended_resamples(6)          # 20 / (0.05 / 6) - 1 = 2399
    2399
    >>> recommended_resamples(1)          # the default 2000 already suffices
    2000
    >>> recommended_resamples(17 * 6)     # 17 candidates x 6 criteria
    40799
    """
    level = smallest_level(alpha, family_size, correction)
    return int(max(minimum, np.ceil(tail_hits / level - 1e-9) - 1))


# --------------------------------------------------------------------------- power


def minimum_detectable_effect(std_error: float, *, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest true delta a one-sided test at ``alpha`` detects with ``power``:
    MDE = (z_{1-alpha} + z_{power}) * SE.

    >>> from harness.metrics.stats import minimum_detectable_effect
    >>> round(minimum_detectable_effect(1.0), 4)  # 1.6449 + 0.8416
    2.4865
    """
    return float((special.ndtri(1 - alpha) + special.ndtri(power)) * std_error)


def power_at(effect: float, std_error: float, *, alpha: float = 0.05) -> float:
    """Power of a one-sided z test at ``alpha`` against a true ``effect`` (> 0 is the
    tested direction): Phi(effect / SE - z_{1-alpha})."""
    if std_error <= 0:
        return 1.0 if effect > 0 else 0.0
    return float(special.ndtr(effect / std_error - special.ndtri(1 - alpha)))


def required_units(effect: float, std_error: float, n_units: int, *, alpha: float = 0.05,
                   power: float = 0.8) -> float:
    """Units needed for a one-sided test at ``alpha`` to reach ``power`` against a true
    ``effect``, scaling SE as 1/sqrt(n): n * ((z_{1-alpha} + z_power) SE / effect)^2.
    ``inf`` when ``effect <= 0`` (more data cannot show it)."""
    if effect <= 0:
        return float("inf")
    return float(np.ceil(n_units * (minimum_detectable_effect(std_error, alpha=alpha, power=power)
                                    / effect) ** 2))
