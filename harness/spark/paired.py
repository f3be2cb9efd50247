"""Paired comparison and launch gate on Spark: per-unit deltas joined on the unit id.

The two models' per-unit tables are joined on ``unit_id`` in Spark; what the local
:func:`harness.inference.paired.compare_models` computes from the per-unit arrays is
computed from distributed sums instead: the means and centred second and third moments
(t-test, Fieller's relative interval, the skew check and the bounded-metric test of
``method="auto"``) and, for bootstrap intervals, the Poisson-replicate sums of the
deltas and of the baseline, with units at their position in sorted unit-id order. The
comparisons and the gate verdict are then built by the local inference code.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np
from scipy import special

from harness.errors import ConfigError, DataValidationError
from harness.evaluate.units import PairedMean
from harness.inference.gate import Verdict, decide
from harness.inference.paired import MetricComparison, inference_fields
from harness.metrics._names import value_range
from harness.metrics.stats import (DEFAULT_METHOD_BY_KIND, DeltaInference, SkewCheck, TInference, _from_replicates,
                                   clip_interval, difference_bounds, fieller_from_moments, relative_bounds)
from harness.options import check_choice, check_confidence
from harness.spec.config import SPARK_COMPARE_METHODS, GateCriterion

from .resample import poisson_sums, with_positions
from .session import require_columns, worker_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

METHODS = SPARK_COMPARE_METHODS
Bounds = tuple[float, float]


def _joined(baseline: "DataFrame", candidate: "DataFrame", metrics: list[str], unit_col: str,
            names: tuple[str, str] | None = None) -> "DataFrame":
    """One row per unit: ``c{j}`` (candidate) and ``b{j}`` (baseline) of metric j; the
    units of the two sides must match exactly, as locally (``names``: the baseline's and
    the candidate's model names, for the message)."""
    from pyspark.sql import functions as F

    for name, frame in (("baseline", baseline), ("candidate", candidate)):
        require_columns(frame, [unit_col, *metrics], f"compare: {name} per-unit table")
    b = baseline.select(F.col(unit_col), *[F.col(f"`{m}`").cast("double").alias(f"b{j}") for j, m in enumerate(metrics)])
    c = candidate.select(F.col(unit_col), *[F.col(f"`{m}`").cast("double").alias(f"c{j}") for j, m in enumerate(metrics)])
    joined = b.withColumn("_b", F.lit(True)).join(c.withColumn("_c", F.lit(True)), unit_col, "full_outer")
    counts = joined.agg(F.sum(F.col("_c").isNull().cast("long")).alias("only_base"),
                        F.sum(F.col("_b").isNull().cast("long")).alias("only_cand"),
                        F.count(F.lit(1)).alias("n")).first()
    if counts["only_base"] or counts["only_cand"]:
        who = f"{names[1]!r} with {names[0]!r}" if names else "the candidate with the baseline"
        raise DataValidationError(f"cannot pair {who}: {counts['only_base']} units only "
                                  f"in the baseline, {counts['only_cand']} only in the candidate")
    return joined.drop("_b", "_c")


def _moments(frame: "DataFrame", m: int) -> dict[str, np.ndarray]:
    """Means, then centred moments (two passes, as the local code's deviations)."""
    from pyspark.sql import functions as F

    cols = [f"c{j}" for j in range(m)] + [f"b{j}" for j in range(m)]
    first = frame.agg(F.count(F.lit(1)).alias("n"), *[F.avg(c).alias(c) for c in cols],
                      *[F.min(c).alias(f"min_{c}") for c in cols], *[F.max(c).alias(f"max_{c}") for c in cols]).first()
    n = int(first["n"])
    mean = {c: float(first[c]) for c in cols}
    dev = {c: F.col(c) - F.lit(mean[c]) for c in cols}
    d_mean = {j: mean[f"c{j}"] - mean[f"b{j}"] for j in range(m)}
    d_dev = {j: F.col(f"c{j}") - F.col(f"b{j}") - F.lit(d_mean[j]) for j in range(m)}
    aggs = []
    for j in range(m):
        cj, bj = dev[f"c{j}"], dev[f"b{j}"]
        aggs += [F.sum(d_dev[j] * d_dev[j]), F.sum(cj * cj), F.sum(bj * bj), F.sum(cj * bj),
                 F.sum(cj * cj * cj), F.sum(bj * bj * bj)]
    second = np.array(frame.agg(*aggs).first(), dtype=np.float64).reshape(m, 6)
    lows = np.array([[first[f"min_c{j}"], first[f"min_b{j}"]] for j in range(m)], dtype=np.float64)
    highs = np.array([[first[f"max_c{j}"], first[f"max_b{j}"]] for j in range(m)], dtype=np.float64)
    return dict(n=n, c=np.array([mean[f"c{j}"] for j in range(m)]), b=np.array([mean[f"b{j}"] for j in range(m)]),
                m2=second, low=lows, high=highs)


def _skew(m2: float, m3: float, n: int) -> SkewCheck:
    """:func:`harness.metrics.stats.skew_check` from centred sums."""
    s2, s3 = m2 / n, m3 / n
    g1 = s3 / s2 ** 1.5 if s2 > 0 else 0.0
    return SkewCheck(float(g1), n, float(28 + 25 * g1 * g1))


def _t_inferences(mom: dict, j: int, confidence: float, method: str) -> tuple[DeltaInference, DeltaInference | None]:
    n = mom["n"]
    s_dd, s_cc, s_bb, s_cb = mom["m2"][j, :4] / (n - 1)
    c_bar, b_bar = float(mom["c"][j]), float(mom["b"][j])
    mean = c_bar - b_bar
    se = float(np.sqrt(s_dd) / np.sqrt(n))
    q = special.stdtrit(n - 1, 1 - (1 - confidence) / 2)
    absolute = TInference(mean, mean - q * se, mean + q * se, method, se, n, df=n - 1)
    if b_bar == 0:
        return absolute, None
    nonneg = bool((mom["low"][j] >= 0).all())
    return absolute, fieller_from_moments(c_bar, b_bar, s_cc, s_bb, s_cb, n, df=float(n - 1), confidence=confidence,
                                          method=method, lower=-1.0 if nonneg else -np.inf)


def _boot_inferences(frame: "DataFrame", mom: dict, js: list[int], *, confidence: float, n_resamples: int,
                     seed: int) -> dict[int, tuple[DeltaInference, DeltaInference | None]]:
    """Percentile intervals of the deltas and relative deltas of metrics ``js``, one
    shared Poisson resample: parts (d_j, b_j) as in the local paired bootstrap."""
    from pyspark.sql import functions as F

    m = len(js)
    parts = frame.select("_position", *[(F.col(f"c{j}") - F.col(f"b{j}")).alias(f"d{j}") for j in js],
                         *[F.col(f"b{j}") for j in js])
    names = [f"d{j}" for j in js] + [f"b{j}" for j in js]
    sums, totals = poisson_sums(parts, names, n_resamples, seed=seed)
    n = mom["n"]
    out = {}
    for t, j in enumerate(js):
        d_sum, b_sum = (mom["c"][j] - mom["b"][j]) * n, mom["b"][j] * n
        with np.errstate(divide="ignore", invalid="ignore"):
            absolute = _from_replicates(float(d_sum / n), sums[:, t] / totals, n, "bootstrap", confidence, None)
            relative = None
            if mom["b"][j] != 0:
                reps = sums[:, t] / sums[:, m + t]
                if np.isfinite(reps).all():
                    relative = _from_replicates(float(d_sum / b_sum), reps, n, "bootstrap", confidence, None)
        out[j] = (absolute, relative)
    return out


def paired_comparison(
    baseline: "DataFrame", candidate: "DataFrame", metrics: Sequence[str], *, unit_col: str = "unit_id",
    baseline_name: str = "baseline", candidate_name: str = "candidate", method: str = "auto",
    confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0,
    bounds: Mapping[str, Bounds] | None = None, gate: Sequence[GateCriterion | Mapping] | None = None,
    correction: str = "holm",
) -> tuple[list[MetricComparison], Verdict | None]:
    """:func:`harness.inference.paired.compare_models` (one candidate, mean-type metrics)
    and :func:`harness.inference.gate.decide` on two per-unit Spark DataFrames.

    Parameters
    ----------
    baseline, candidate : Spark DataFrame
        ``unit_col`` and one column per metric (e.g. :class:`SparkRankingResult`'s
        ``per_query`` with ``unit_col="query_id"``); the same units on both sides.
    method : {"auto", "bootstrap", "t_test"}
        As locally; the bootstrap is the Poisson bootstrap with units at their position
        in sorted unit-id order, equal to the local one run with ``weights="poisson"`` on
        tables sorted by unit id.
    bounds : mapping metric -> (low, high), optional
        Default: the metric's known range (nDCG in [0, 1], ...), as in a run.
    gate : criteria, optional
        Gate criteria (``GateCriterion`` or their config mappings): the verdict is
        returned too (else None).

    Returns
    -------
    (comparisons, verdict)
    """
    check_choice(method, METHODS, name="compare.method")
    check_confidence(confidence, name="compare.confidence")
    metrics = list(metrics)
    if not metrics:
        raise ConfigError("compare: give at least one metric")
    with worker_errors():
        joined, cached = with_positions(_joined(baseline, candidate, metrics, unit_col), unit_col)
    try:
        found = paired_means(joined, metrics, method=method, confidence=confidence, n_resamples=n_resamples,
                             seed=seed, bounds=bounds)
    finally:
        cached.unpersist()
    rows = [MetricComparison(metric=p.metric, baseline=baseline_name, candidate=candidate_name,
                             baseline_value=p.baseline_value, candidate_value=p.candidate_value,
                             method=method, confidence=confidence, kind="mean",
                             **inference_fields(p.absolute, p.relative)) for p in found]
    if not gate:
        return rows, None
    criteria = [c if isinstance(c, GateCriterion) else GateCriterion.model_validate(dict(c)) for c in gate]
    return rows, decide(criteria, rows, correction=correction)


def paired_means(joined: "DataFrame", metrics: Sequence[str], *, method: str, confidence: float, n_resamples: int,
                 seed: int, bounds: Mapping[str, Bounds] | None = None) -> list[PairedMean]:
    """The paired inferences of every metric from a joined table (one row per paired
    unit: ``c{j}`` candidate and ``b{j}`` baseline values of metric j, ``_position`` the
    unit's position for the bootstrap), from distributed moments and Poisson sums."""
    m = len(metrics)
    with worker_errors():
        mom = _moments(joined, m)
    n = mom["n"]
    if n < 2:
        raise DataValidationError(f"compare: need at least 2 paired units, got {n}")
    skews = [(_skew(mom["m2"][j, 1], mom["m2"][j, 4], n), _skew(mom["m2"][j, 2], mom["m2"][j, 5], n))
             for j in range(m)]
    skewed = [not (a.ok and b.ok) for a, b in skews]
    if method == "auto":
        bounded = [bool((mom["low"][j] >= 0).all() and (mom["high"][j] <= 1).all()) for j in range(m)]
        chosen = [DEFAULT_METHOD_BY_KIND["regular" if bounded[j] and not skewed[j] else "skewed"] for j in range(m)]
    else:
        chosen = [method] * m
    infs: dict[int, tuple[DeltaInference, DeltaInference | None]] = {
        j: _t_inferences(mom, j, confidence, "t_test") for j in range(m) if chosen[j] == "t_test"}
    boot = [j for j in range(m) if chosen[j] == "bootstrap"]
    if boot:
        with worker_errors():
            infs.update(_boot_inferences(joined, mom, boot, confidence=confidence, n_resamples=n_resamples, seed=seed))
    bounds = dict(bounds or {})
    out = []
    for j, name in enumerate(metrics):
        absolute, relative = infs[j]
        if skewed[j] and chosen[j] == "bootstrap":
            worst = max(skews[j], key=lambda k: k.n_needed)
            note = (f"skewed per-unit values (skewness {worst.g1:.3g}): the bootstrap interval needs about "
                    f"{worst.n_needed:,.0f} units to hold its level (Cochran/Sugden rule), there are "
                    f"{worst.n_units:,}; use method t_test (Fieller for relative deltas)")
            absolute = dataclasses.replace(absolute, reliability=note)
            relative = None if relative is None else dataclasses.replace(relative, reliability=note)
        r = bounds.get(name) or value_range(name)
        absolute = clip_interval(absolute, difference_bounds(r, r))
        relative = None if relative is None else clip_interval(relative, relative_bounds(r, r))
        out.append(PairedMean(name, float(mom["b"][j]), float(mom["c"][j]), absolute, relative))
    return out
