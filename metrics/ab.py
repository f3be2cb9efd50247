"""A/B test analysis from sufficient statistics: Welch, ratio metrics, relative lift, CUPED, SRM.

Every number of an A/B analysis is a function of each variant's *moments* of its
per-unit columns: the count n, the column sums S_j = sum_i x_ij and the cross products
P_jk = sum_i x_ij x_ik (:class:`VariantMoments`). Per-unit data are reduced to moments
once (:func:`variant_moments`, chunked matrix products: memory bounded); a table of
moments aggregated in a warehouse (:func:`moments_from_table`) gives the same object, so
both inputs share one code path and give the same numbers.

Estimands. A metric of a variant is a smooth function of its column means mu:
a mean (f = mu_y; a proportion is the mean of a 0/1 column) or a ratio of means
(f = mu_y / mu_x, e.g. clicks / impressions per user). Its variance is by the delta
method (Deng, Knoblich & Lu 2018): Var(f_hat) = g' Sigma g / n, g = grad f(mu),
Sigma the per-unit covariance matrix (ddof 1). For a mean this is s^2 / n, Welch's.

CUPED / regression adjustment (Deng, Xu, Kohavi & Walker 2013). With pre-period
covariate functions h (means or ratios of pre-period columns), the adjusted metric is
f_adj = f_hat - theta' (h_hat - h_bar), h_bar the covariates over all variants, and
theta = (sum_v (n_v - 1) G_v Sigma_v G_v')^-1 sum_v (n_v - 1) G_v Sigma_v g_v the pooled
within-variant regression of the linearised metric on the linearised covariates (one
theta for every variant, so the adjustment does not depend on the treatment). Its
variance is (g - G' theta)' Sigma (g - G' theta) / n; for one covariate of correlation
rho with the metric, (1 - rho^2) times the unadjusted one.

Difference of two variants: delta = f_T - f_C, Var = v_T + v_C (independent groups),
Welch-Satterthwaite degrees of freedom df = (v_T + v_C)^2 / (v_T^2 / (n_T - 1) + v_C^2 /
(n_C - 1)): for a mean metric without covariates exactly ``scipy.stats.ttest_ind(...,
equal_var=False)``. Relative lift r = f_T / f_C - 1 by the delta method,
SE_r = sqrt(v_T + (1 + r)^2 v_C) / |f_C|, or by Fieller's theorem (the set of r whose
test of f_T - (1 + r) f_C = 0 does not reject), which stays valid when f_C is noisy.

Cluster-randomised designs (randomised by market, creator, ...): the unit of analysis is
the cluster; per-cluster totals of every column and the cluster's unit count make every
per-user mean a ratio of cluster totals, whose delta-method variance is the
cluster-robust (CR0-type sandwich) variance (Deng et al. 2018, section 3.2).

References
----------
Welch, B. L. (1947). The generalization of 'Student's' problem when several different
population variances are involved. *Biometrika* 34, 28-35.
Deng, A., Knoblich, U. & Lu, J. (2018). Applying the delta method in metric analytics: a
practical guide with novel ideas. *KDD 2018*.
Deng, A., Xu, Y., Kohavi, R. & Walker, T. (2013). Improving the sensitivity of online
controlled experiments by utilizing pre-experiment data. *WSDM 2013* (CUPED).
Fieller, E. C. (1954). Some problems in interval estimation. *JRSS B* 16(2), 175-185.
Fabijan, A. et al. (2019). Diagnosing sample ratio mismatch in online controlled
experiments. *KDD 2019*.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import DataValidationError, describe_examples
from harness.options import check_choice, check_confidence, check_probability

from .sequential import always_valid_inference
from .stats import DeltaInference, TInference, fieller_from_moments

RELATIVE_METHODS = ("delta", "fieller")
# rows reduced per matrix product in ``variant_moments``: bounds memory at chunk x k floats
CHUNK_ROWS = 1 << 18
# the count column added to per-cluster totals
UNITS = "__units__"
SRM_THRESHOLD = 0.001


# --------------------------------------------------------------------------- moments


@dataclass(frozen=True)
class VariantMoments:
    """Sufficient statistics of one variant: ``n`` units and, for per-unit columns
    ``columns``, ``sums[j]`` = sum_i x_ij and ``cross[j, k]`` = sum_i x_ij x_ik (NaN
    where a cross product was not supplied)."""

    variant: str
    n: int
    columns: tuple[str, ...]
    sums: np.ndarray
    cross: np.ndarray

    def index(self, names: Sequence[str]) -> np.ndarray:
        where = {c: j for j, c in enumerate(self.columns)}
        missing = [c for c in names if c not in where]
        if missing:
            raise DataValidationError(f"variant {self.variant!r}: no statistics for column(s) {missing}; "
                                      f"have {list(self.columns)}")
        return np.array([where[c] for c in names], dtype=np.int64)

    def mean(self, idx: np.ndarray) -> np.ndarray:
        return self.sums[idx] / self.n

    def covariance(self, idx: np.ndarray) -> np.ndarray:
        """Sample covariance (ddof 1) of the columns ``idx``: (P - n mu mu') / (n - 1)."""
        block = self.cross[np.ix_(idx, idx)]
        if np.isnan(block).any():
            i, j = np.argwhere(np.isnan(block))[0]
            raise DataValidationError(f"variant {self.variant!r}: the statistics lack the cross product "
                                      f"{_cross_name(self.columns[idx[i]], self.columns[idx[j]])!r} "
                                      "needed by this metric")
        mu = self.mean(idx)
        return (block - self.n * np.outer(mu, mu)) / (self.n - 1)


def variant_moments(values: np.ndarray, variants: np.ndarray, *, names: Sequence[str],
                    columns: Sequence[str], chunk_rows: int = CHUNK_ROWS) -> list[VariantMoments]:
    """Moments of per-unit ``values`` (n_units x k) for each variant.

    ``variants`` holds each unit's variant as an integer code into ``names``. Reduced in
    chunks of ``chunk_rows`` rows (sums and X'X by matrix products), so memory stays at
    one chunk whatever the number of units.

    >>> import numpy as np
    >>> from harness.metrics.ab import variant_moments
    >>> m = variant_moments(np.array([[1.0], [2.0], [3.0]]), np.array([0, 0, 1]), names=["A", "B"], columns=["y"])
    >>> m[0].n, m[0].sums.tolist(), m[0].cross.tolist()
    (2, [3.0], [[5.0]])
    """
    x = np.asarray(values, dtype=np.float64)
    codes = np.asarray(variants)
    k = x.shape[1]
    counts = np.bincount(codes, minlength=len(names))
    sums = np.zeros((len(names), k))
    cross = np.zeros((len(names), k, k))
    for start in range(0, x.shape[0], chunk_rows):
        block, code = x[start:start + chunk_rows], codes[start:start + chunk_rows]
        for v in np.unique(code):
            rows = block[code == v]
            sums[v] += rows.sum(axis=0)
            cross[v] += rows.T @ rows
    return [VariantMoments(str(name), int(counts[v]), tuple(columns), sums[v], cross[v])
            for v, name in enumerate(names)]


def add_moments(parts: Sequence[VariantMoments], *, variant: str | None = None) -> VariantMoments:
    """The moments of the union of disjoint sets of units (segments, days, data chunks):
    counts, sums and cross products add."""
    first = parts[0]
    for m in parts[1:]:
        if m.columns != first.columns:
            raise DataValidationError(f"cannot add moments over columns {list(m.columns)} to {list(first.columns)}")
    return VariantMoments(first.variant if variant is None else variant, sum(m.n for m in parts), first.columns,
                          sum(m.sums for m in parts), sum(m.cross for m in parts))


def segment_moments(values: np.ndarray, variants: np.ndarray, segments: np.ndarray, *, names: Sequence[str],
                    segment_names: Sequence[str], columns: Sequence[str]) -> dict[str, list[VariantMoments]]:
    """Moments per segment and variant in one pass (code = variant x n_segments + segment):
    ``{segment: [moments of each variant]}``; :func:`add_moments` over the segments gives
    the whole experiment's."""
    s = len(segment_names)
    combined = np.asarray(variants, dtype=np.int64) * s + np.asarray(segments, dtype=np.int64)
    flat = variant_moments(values, combined, names=[f"{v}|{g}" for v in names for g in segment_names],
                           columns=columns)
    return {g: [dataclasses.replace(flat[v * s + j], variant=str(name)) for v, name in enumerate(names)]
            for j, g in enumerate(segment_names)}


@dataclass(frozen=True)
class ClusterTotals:
    """Per-cluster totals: ``values`` (n_clusters x (k + 1), the last column ``UNITS`` the
    cluster's unit count), each cluster's ``variants`` code and, when segmented, its
    ``segments`` code."""

    values: np.ndarray
    variants: np.ndarray
    columns: tuple[str, ...]
    segments: np.ndarray | None = None
    ids: np.ndarray | None = None


def mixed_clusters_error(n_mixed: int, examples: object, what: str,
                         units: str | None = None) -> DataValidationError:
    """The error for ``n_mixed`` clusters seen in more than one ``what`` (variant or
    segment); ``units`` names the clusters when each is one unit over several rows (a
    holdout's (user, week) rows: "unit(s) ('user' column)"), the Spark engine's too."""
    if units is not None:
        return DataValidationError(f"{n_mixed} {units} have rows in more than one {what}, "
                                   f"{describe_examples(examples)}: a unit stays in one {what} for the whole "
                                   "experiment")
    return DataValidationError(f"{n_mixed} cluster(s) have units in more than one {what}, "
                               f"{describe_examples(examples)}: a cluster-randomised design keeps a whole cluster "
                               f"in one {what}")


def _per_cluster(inverse: np.ndarray, codes: np.ndarray, cluster_ids: np.ndarray, what: str,
                 units: str | None) -> np.ndarray:
    """Each cluster's code, refusing a cluster whose units carry two codes (named by
    ``cluster_ids``)."""
    lo = np.full(cluster_ids.size, np.iinfo(np.int64).max)
    hi = np.full(cluster_ids.size, -1)
    np.minimum.at(lo, inverse, codes)
    np.maximum.at(hi, inverse, codes)
    mixed = np.flatnonzero(lo != hi)
    if mixed.size:
        raise mixed_clusters_error(mixed.size, cluster_ids[mixed], what, units)
    return lo


def cluster_totals(values: np.ndarray, variants: np.ndarray, clusters: np.ndarray, *,
                   columns: Sequence[str], segments: np.ndarray | None = None,
                   counts: np.ndarray | None = None, units: str | None = None,
                   names: np.ndarray | None = None) -> ClusterTotals:
    """Per-cluster totals of each column plus the cluster's unit count (column ``UNITS``).
    A cluster seen in two variants (or two segments) is an error: the design was not
    randomised by that cluster (``units``: each cluster is one unit's rows, so named, see
    :func:`mixed_clusters_error`; ``names``: the ids that integer ``clusters`` index, to
    name them). ``counts`` (default 1 per row) are the units each row stands for:
    partial totals of data chunks combine by passing their ``UNITS`` column."""
    cluster_ids, inverse = np.unique(np.asarray(clusters), return_inverse=True)
    n_clusters = cluster_ids.size
    named = cluster_ids if names is None else np.asarray(names)[cluster_ids]
    arms = _per_cluster(inverse, np.asarray(variants, dtype=np.int64), named, "variant", units)
    segs = None if segments is None else _per_cluster(inverse, np.asarray(segments, dtype=np.int64), named,
                                                      "segment", units)
    x = np.asarray(values, dtype=np.float64)
    totals = np.column_stack([np.bincount(inverse, weights=x[:, j], minlength=n_clusters)
                              for j in range(x.shape[1])] + [np.bincount(inverse, weights=counts, minlength=n_clusters)])
    return ClusterTotals(totals.astype(np.float64), arms, (*columns, UNITS), segs, cluster_ids)


# --------------------------------------------------------------------------- the moments table

_CROSS = re.compile(r"^sum\((.+)\*(.+)\)$")
_SUM = re.compile(r"^sum\((.+)\)$")


def _cross_name(a: str, b: str) -> str:
    return f"sum({a}*{b})"


def moments_table(moments: Sequence[VariantMoments]) -> pd.DataFrame:
    """The sufficient-statistics table: one row per variant, columns ``variant``, ``n``,
    ``sum(<col>)`` and ``sum(<a>*<b>)`` (each unordered pair once, squares included) —
    what a warehouse query would return, and what :func:`moments_from_table` reads."""
    rows = []
    for m in moments:
        row: dict[str, object] = {"variant": m.variant, "n": m.n}
        for j, c in enumerate(m.columns):
            row[f"sum({c})"] = m.sums[j]
        for j, a in enumerate(m.columns):
            for k in range(j, len(m.columns)):
                row[_cross_name(a, m.columns[k])] = m.cross[j, k]
        rows.append(row)
    return pd.DataFrame(rows)


def moments_from_table(table: pd.DataFrame, *, variant: str = "variant", count: str = "n",
                       source: str = "statistics table") -> list[VariantMoments]:
    """Read a sufficient-statistics table (see :func:`moments_table`); cross products not
    given are NaN and only an error if a metric needs them. Each variant is one row."""
    for col in (variant, count):
        if col not in table.columns:
            raise DataValidationError(f"{source}: no column {col!r}; have {list(table.columns)}")
    dup = table[variant][table[variant].duplicated()]
    if len(dup):
        raise DataValidationError(f"{source}: variant(s) {describe_examples(dup)} have more than one row")
    columns = [m.group(1) for c in table.columns if (m := _SUM.match(str(c))) and not _CROSS.match(str(c))]
    unknown = [c for c in table.columns if c not in (variant, count) and not _SUM.match(str(c))]
    if unknown:
        raise DataValidationError(f"{source}: column(s) {unknown} are neither 'sum(<col>)' nor "
                                  "'sum(<a>*<b>)'")
    where = {c: j for j, c in enumerate(columns)}
    out = []
    for _, row in table.iterrows():  # one row per variant: a handful
        n = row[count]
        if not np.isfinite(n) or n < 2 or n != int(n):
            raise DataValidationError(f"{source}: variant {row[variant]!r} has n={n!r}; need an integer >= 2")
        sums = np.array([float(row[f"sum({c})"]) for c in columns])
        cross = np.full((len(columns), len(columns)), np.nan)
        for c in table.columns:
            m = _CROSS.match(str(c))
            if m is None:
                continue
            a, b = m.group(1), m.group(2)
            if a not in where or b not in where:
                raise DataValidationError(f"{source}: {c!r} names a column without its 'sum(...)'")
            cross[where[a], where[b]] = cross[where[b], where[a]] = float(row[c])
        bad = [columns[j] for j in range(len(columns)) if not np.isfinite(sums[j])]
        if bad:
            raise DataValidationError(f"{source}: variant {row[variant]!r}: sum of {bad[:3]} is not finite")
        _check_realisable(row[variant], int(n), columns, sums, cross, source)
        out.append(VariantMoments(str(row[variant]), int(n), tuple(columns), sums, cross))
    return out


def _check_realisable(name: object, n: int, columns: list[str], sums: np.ndarray, cross: np.ndarray,
                      source: str) -> None:
    """Refuse sums no data could give (an edited or mis-joined table): a negative
    variance, ``n sum(x^2) < sum(x)^2``, or a correlation outside [-1, 1],
    ``(n sum(ab) - sum(a) sum(b))^2 > var_a var_b`` (both n^2 times the sample moments).
    Tolerances are relative, for sums computed in floating point."""
    given = np.isfinite(np.diag(cross))
    var = n * np.diag(cross) - sums ** 2
    scale = n * np.abs(np.diag(cross)) + sums ** 2
    for j in np.flatnonzero(given & (var < -1e-9 * scale)):
        c = columns[j]
        raise DataValidationError(
            f"{source}: variant {name!r}: sum({c}*{c}) = {cross[j, j]:.6g} is below sum({c})^2 / n = "
            f"{sums[j] ** 2 / n:.6g}: a negative variance, which no data can give")
    for j, k in zip(*np.triu_indices(len(columns), 1)):
        if not (given[j] and given[k] and np.isfinite(cross[j, k])):
            continue
        cov = n * cross[j, k] - sums[j] * sums[k]
        if cov * cov > max(var[j], 0.0) * max(var[k], 0.0) * (1 + 1e-9) + 1e-9 * scale[j] * scale[k]:
            a, b = columns[j], columns[k]
            raise DataValidationError(
                f"{source}: variant {name!r}: sum({a}*{b}) = {cross[j, k]:.6g} gives {a} and {b} a correlation "
                "outside [-1, 1], which no data can give")


def segmented_moments_from_table(table: pd.DataFrame, *, segment: str, variant: str = "variant",
                                 count: str = "n", source: str = "statistics table") -> dict[str, list[VariantMoments]]:
    """A statistics table with one row per (segment, variant): ``{segment: moments}``."""
    if segment not in table.columns:
        raise DataValidationError(f"{source}: no segment column {segment!r}; have {list(table.columns)}")
    return {str(g): moments_from_table(part.drop(columns=[segment]), variant=variant, count=count,
                                       source=f"{source} (segment {g!r})")
            for g, part in table.groupby(segment, sort=False)}


# --------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class Ratio:
    """mean(numerator) / mean(denominator), or mean(numerator) when ``denominator`` is None."""

    numerator: str
    denominator: str | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return (self.numerator,) if self.denominator is None else (self.numerator, self.denominator)

    def per_unit(self, units: str) -> "Ratio":
        """The same estimand over clusters: a per-unit mean becomes total / unit count."""
        return self if self.denominator is not None else Ratio(self.numerator, units)


@dataclass(frozen=True)
class ABMetric:
    """An experiment metric: ``value`` (a mean or a ratio of means) and optional
    pre-period ``covariates`` for CUPED (each a mean or a ratio)."""

    name: str
    value: Ratio
    covariates: tuple[Ratio, ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c for r in (self.value, *self.covariates) for c in r.columns))

    def per_cluster(self) -> "ABMetric":
        return ABMetric(self.name, self.value.per_unit(UNITS), tuple(c.per_unit(UNITS) for c in self.covariates))


def ratio_value_and_gradient(f: Ratio, mu: np.ndarray, where: Mapping[str, int]) -> tuple[float, np.ndarray]:
    """The value of ``f`` at the column means ``mu`` (``where``: column -> index) and its
    gradient in ``mu``: the linearisation every delta-method variance here uses."""
    g = np.zeros(mu.size)
    num = mu[where[f.numerator]]
    if f.denominator is None:
        g[where[f.numerator]] = 1.0
        return float(num), g
    den = mu[where[f.denominator]]
    if den == 0:
        raise DataValidationError(f"ratio metric {f.numerator}/{f.denominator}: the mean of "
                                  f"{f.denominator!r} is 0 in a variant")
    g[where[f.numerator]] += 1.0 / den
    g[where[f.denominator]] -= num / den ** 2
    return float(num / den), g


@dataclass(frozen=True)
class ArmEstimate:
    """One variant's metric: ``value`` (CUPED-adjusted when covariates are used) and its
    variance; ``raw_value`` / ``raw_variance`` without the adjustment; ``n`` units."""

    variant: str
    n: int
    value: float
    variance: float
    raw_value: float
    raw_variance: float


@dataclass(frozen=True)
class _Linearised:
    n: int
    f: float
    h: np.ndarray  # covariate values (p,)
    g: np.ndarray  # gradient of f (k,)
    G: np.ndarray  # gradients of h (p, k)
    cov: np.ndarray  # (k, k)


def _linearise(m: VariantMoments, metric: ABMetric) -> _Linearised:
    cols = metric.columns
    idx = m.index(cols)
    where = {c: j for j, c in enumerate(cols)}
    mu = m.mean(idx)
    f, g = ratio_value_and_gradient(metric.value, mu, where)
    hs = [ratio_value_and_gradient(c, mu, where) for c in metric.covariates]
    h = np.array([v for v, _ in hs])
    G = np.array([grad for _, grad in hs]).reshape(len(hs), len(cols))
    return _Linearised(m.n, f, h, g, G, m.covariance(idx))


def cuped_theta(moments: Sequence[VariantMoments], metric: ABMetric) -> np.ndarray:
    """Pooled CUPED coefficients: theta = (sum_v (n_v - 1) G_v S_v G_v')^+ sum_v (n_v - 1) G_v S_v g_v,
    the within-variant regression of the linearised metric on the linearised covariates
    (pseudo-inverse: a constant covariate gets theta 0). Empty without covariates.

    >>> import numpy as np
    >>> from harness.metrics.ab import ABMetric, Ratio, cuped_theta, variant_moments
    >>> x = np.array([1.0, 2, 3, 4, 5, 6]); y = 2 * x + np.array([0.1, -0.1, 0, 0.1, -0.1, 0])
    >>> m = variant_moments(np.column_stack([y, x]), np.array([0, 0, 0, 1, 1, 1]), names="AB", columns=["y", "x"])
    >>> cuped_theta(m, ABMetric("y", Ratio("y"), (Ratio("x"),))).round(3).tolist()
    [1.95]
    """
    if not metric.covariates:
        return np.zeros(0)
    lin = [_linearise(m, metric) for m in moments]
    hh = sum((a.n - 1) * a.G @ a.cov @ a.G.T for a in lin)
    hf = sum((a.n - 1) * a.G @ a.cov @ a.g for a in lin)
    return np.linalg.pinv(np.atleast_2d(hh)) @ np.atleast_1d(hf)


def arm_estimates(moments: Sequence[VariantMoments], metric: ABMetric, *, cuped: bool = True
                  ) -> tuple[list[ArmEstimate], np.ndarray]:
    """Each variant's metric value and variance (delta method), CUPED-adjusted with the
    pooled theta when ``cuped`` and the metric has covariates; returns the estimates and
    theta. The covariates are centred at their value over all variants pooled (h_bar),
    so the adjusted values stay on the metric's scale."""
    lin = [_linearise(m, metric) for m in moments]
    theta = cuped_theta(moments, metric) if cuped else np.zeros(0)
    h_bar = np.zeros(0)
    if theta.size:
        pooled = add_moments(moments, variant="pooled")
        h_bar = _linearise(pooled, metric).h
    out = []
    for m, a in zip(moments, lin):
        raw_var = float(a.g @ a.cov @ a.g) / a.n
        if theta.size:
            d = a.g - a.G.T @ theta
            value, var = a.f - float(theta @ (a.h - h_bar)), float(d @ a.cov @ d) / a.n
        else:
            value, var = a.f, raw_var
        out.append(ArmEstimate(m.variant, m.n, value, max(var, 0.0), a.f, max(raw_var, 0.0)))
    return out, theta


# --------------------------------------------------------------------------- effects


def welch_df(var_t: float, n_t: int, var_c: float, n_c: int) -> float:
    """Welch-Satterthwaite degrees of freedom of a difference of two means whose squared
    standard errors are ``var_t`` and ``var_c``: (v_T + v_C)^2 / (v_T^2 / (n_T - 1) + v_C^2 / (n_C - 1))."""
    den = var_t ** 2 / (n_t - 1) + var_c ** 2 / (n_c - 1)
    return float((var_t + var_c) ** 2 / den) if den > 0 else float(n_t + n_c - 2)


@dataclass(frozen=True)
class ABEffect:
    """Treatment vs control on one metric: ``absolute`` (f_T - f_C) and ``relative``
    (f_T / f_C - 1; None when f_C is 0) inferences, the arms, CUPED's ``theta`` and
    ``variance_reduction`` = 1 - Var_adjusted(delta) / Var_unadjusted(delta)."""

    metric: str
    control: ArmEstimate
    treatment: ArmEstimate
    absolute: DeltaInference
    relative: DeltaInference | None
    theta: np.ndarray = field(default_factory=lambda: np.zeros(0))
    variance_reduction: float = 0.0


def ab_effect(control: ArmEstimate, treatment: ArmEstimate, *, metric: str = "metric", confidence: float = 0.95,
              relative: str = "delta", sequential: bool = False, horizon: float | None = None,
              theta: np.ndarray | None = None) -> ABEffect:
    """Difference and relative lift of two independent arms.

    Absolute: Welch t on delta = f_T - f_C with SE = sqrt(v_T + v_C) and Welch-Satterthwaite
    df (``method`` "welch", or "cuped" when adjusted). Relative: ``"delta"``:
    r -+ t SE_r with SE_r = sqrt(v_T + (1 + r)^2 v_C) / |f_C|; ``"fieller"``: Fieller's
    interval (unbounded when f_C is not significantly non-zero). With ``sequential`` both
    are always-valid confidence sequences (:func:`harness.metrics.sequential.always_valid_inference`)
    tuned at ``horizon`` units (default: the units seen).

    >>> from harness.metrics.ab import ArmEstimate, ab_effect
    >>> c, t = ArmEstimate("A", 100, 1.0, 0.01, 1.0, 0.01), ArmEstimate("B", 100, 1.3, 0.01, 1.3, 0.01)
    >>> e = ab_effect(c, t)
    >>> round(e.absolute.estimate, 6), round(e.absolute.std_error, 6), round(e.relative.estimate, 6)
    (0.3, 0.141421, 0.3)
    """
    confidence = check_confidence(confidence)
    check_choice(relative, RELATIVE_METHODS, name="relative")
    n_total = control.n + treatment.n
    cuped = theta is not None and theta.size > 0
    method = "cuped" if cuped else "welch"
    delta = treatment.value - control.value
    var = treatment.variance + control.variance
    se = float(np.sqrt(var))
    df = welch_df(treatment.variance, treatment.n, control.variance, control.n)
    raw_var = treatment.raw_variance + control.raw_variance
    reduction = 1.0 - var / raw_var if raw_var > 0 else 0.0
    rel: DeltaInference | None = None
    if sequential:
        absolute: DeltaInference = always_valid_inference(delta, se, n_total, confidence=confidence,
                                                          horizon=horizon)
        if control.value != 0:
            r = treatment.value / control.value - 1.0
            se_r = float(np.sqrt(treatment.variance + (1 + r) ** 2 * control.variance) / abs(control.value))
            rel = always_valid_inference(r, se_r, n_total, confidence=confidence, horizon=horizon)
    else:
        q = float(special.stdtrit(df, 0.5 + confidence / 2))
        absolute = TInference(delta, delta - q * se, delta + q * se, method, se, n_total, df=df)
        if control.value != 0:
            if relative == "fieller":
                rel = fieller_from_moments(treatment.value, control.value, n_total * treatment.variance,
                                           n_total * control.variance, 0.0, n_total, df=df,
                                           confidence=confidence, method=f"{method}+fieller")
            else:
                r = treatment.value / control.value - 1.0
                se_r = float(np.sqrt(treatment.variance + (1 + r) ** 2 * control.variance) / abs(control.value))
                rel = TInference(r, r - q * se_r, r + q * se_r, f"{method}+delta", se_r, n_total, df=df)
    return ABEffect(metric, control, treatment, absolute, rel, np.zeros(0) if theta is None else theta,
                    float(reduction))


def analyze_metric(moments: Sequence[VariantMoments], metric: ABMetric, *, control: str,
                   confidence: float = 0.95, cuped: bool = True, relative: str = "delta",
                   sequential: bool = False, horizon: float | None = None) -> list[ABEffect]:
    """Every treatment against ``control`` on one metric (one pooled CUPED theta for all
    variants). ``moments`` lists every variant; see :func:`ab_effect` for the inference.

    >>> import numpy as np
    >>> from scipy import stats
    >>> from harness.metrics.ab import ABMetric, Ratio, analyze_metric, variant_moments
    >>> y = np.array([1.0, 3, 2, 5, 4, 9, 7, 8]); arm = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    >>> (e,) = analyze_metric(variant_moments(y[:, None], arm, names=["A", "B"], columns=["y"]),
    ...                       ABMetric("y", Ratio("y")), control="A")
    >>> ref = stats.ttest_ind(y[arm == 1], y[arm == 0], equal_var=False)
    >>> bool(np.isclose(e.absolute.p_two_sided(0.0), ref.pvalue))
    True
    """
    names = [m.variant for m in moments]
    if control not in names:
        raise DataValidationError(f"control variant {control!r} not in the data; variants: {names}")
    for m in moments:
        if m.n < 2:
            raise DataValidationError(f"variant {m.variant!r} has {m.n} unit(s); need at least 2 per variant")
    arms, theta = arm_estimates(moments, metric, cuped=cuped)
    base = arms[names.index(control)]
    return [ab_effect(base, arm, metric=metric.name, confidence=confidence, relative=relative,
                      sequential=sequential, horizon=horizon, theta=theta)
            for arm in arms if arm.variant != control]


# --------------------------------------------------------------------------- sample ratio mismatch


@dataclass(frozen=True)
class SampleRatioMismatch:
    """Pearson chi-square goodness of fit of the variants' unit counts to the planned
    split; ``invalid`` when ``p_value < threshold``."""

    statistic: float
    p_value: float
    df: int
    observed: dict[str, int]
    expected: dict[str, float]
    threshold: float
    invalid: bool

    @property
    def message(self) -> str:
        shares = ", ".join(f"{k} {v / sum(self.observed.values()):.4%} (planned "
                           f"{self.expected[k] / sum(self.observed.values()):.4%})" for k, v in self.observed.items())
        return (f"sample ratio mismatch: chi2={self.statistic:.4g} on {self.df} df, p={self.p_value:.3g} "
                f"{'<' if self.invalid else '>='} {self.threshold:g}: {shares}")


def sample_ratio_mismatch(counts: Mapping[str, int], planned: Mapping[str, float], *,
                          threshold: float = SRM_THRESHOLD) -> SampleRatioMismatch:
    """Sample ratio mismatch test: chi2 = sum_v (o_v - e_v)^2 / e_v with e_v = N p_v,
    p_v the planned share (normalised to sum 1), on V - 1 df. A p-value below
    ``threshold`` (0.001 by convention, Fabijan et al. 2019) means the assignment or the
    logging is broken: the experiment's metrics cannot be trusted, whatever they say.

    >>> from harness.metrics.ab import sample_ratio_mismatch
    >>> s = sample_ratio_mismatch({"A": 505_000, "B": 495_000}, {"A": 0.5, "B": 0.5})
    >>> round(s.statistic, 1), s.invalid
    (100.0, True)
    """
    threshold = check_probability(threshold, name="srm threshold", low_open=True, high_open=True)
    missing = [v for v in planned if v not in counts]
    extra = [v for v in counts if v not in planned]
    if missing or extra:
        raise DataValidationError(f"sample ratio check: planned variants {sorted(planned)} but the data has "
                                  f"{sorted(counts)} (missing {missing}, unplanned {extra})")
    shares = np.array([float(planned[v]) for v in planned])
    if (shares <= 0).any():
        raise DataValidationError(f"planned split {dict(planned)}: every share must be > 0")
    obs = np.array([int(counts[v]) for v in planned], dtype=np.float64)
    exp = obs.sum() * shares / shares.sum()
    stat = float(((obs - exp) ** 2 / exp).sum())
    df = len(shares) - 1
    p = float(special.chdtrc(df, stat)) if df > 0 else 1.0
    return SampleRatioMismatch(stat, p, df, {v: int(counts[v]) for v in planned},
                               {v: float(e) for v, e in zip(planned, exp)}, threshold, p < threshold)


# --------------------------------------------------------------------------- heterogeneity


@dataclass(frozen=True)
class Heterogeneity:
    """Cochran's Q test that an effect is the same in every segment: ``q`` on ``df``
    degrees of freedom, ``p_value``, I^2 = max(0, (Q - df) / Q) (the share of the spread
    beyond chance) and the inverse-variance ``pooled`` effect."""

    q: float
    df: int
    p_value: float
    i2: float
    pooled: float


def heterogeneity_test(estimates: np.ndarray, std_errors: np.ndarray) -> Heterogeneity:
    """Cochran's Q over independent segment effects d_s with standard errors SE_s:
    Q = sum_s w_s (d_s - d_bar)^2, w_s = 1 / SE_s^2, d_bar = sum w_s d_s / sum w_s, chi^2 on
    S - 1 df under H0: one effect for all segments.

    References: Cochran, W. G. (1954). The combination of estimates from different
    experiments. *Biometrics* 10(1), 101-129. Higgins & Thompson (2002), *Stat. Med.* 21 (I^2).

    >>> import numpy as np
    >>> from harness.metrics.ab import heterogeneity_test
    >>> h = heterogeneity_test(np.array([0.0, 1.0]), np.array([0.5, 0.5]))
    >>> round(h.q, 6), h.df, round(h.pooled, 6)   # (0.5^2 + 0.5^2) / 0.25
    (2.0, 1, 0.5)
    """
    d = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(std_errors, dtype=np.float64)
    if d.size < 2 or d.shape != se.shape:
        raise DataValidationError(f"heterogeneity test: needs >= 2 segments with one standard error each, "
                                  f"got {d.size} estimates and {se.size} standard errors")
    if not (np.isfinite(se) & (se > 0)).all() or not np.isfinite(d).all():
        raise DataValidationError(f"heterogeneity test: every segment needs a finite estimate and a positive "
                                  f"standard error; got {describe_examples(se[~(se > 0)])}")
    w = 1.0 / se ** 2
    pooled = float((w * d).sum() / w.sum())
    q = float((w * (d - pooled) ** 2).sum())
    df = d.size - 1
    i2 = max(0.0, (q - df) / q) if q > 0 else 0.0
    return Heterogeneity(q, df, float(special.chdtrc(df, q)), i2, pooled)
