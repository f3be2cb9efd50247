"""Candidate vs baseline on the same units: paired deltas with intervals, p-values, MDE.

Mean-type metrics (one value per unit, the metric is their mean) come as per-unit
tables. Ratio-type metrics (SNIPS, ECE, ...: not a mean of per-unit values) come as
:class:`~harness.metrics.stats.SumStatistic` objects per model and metric; they get
percentile or BCa bootstrap intervals from the same resampling engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError
from harness.options import check_choice, check_confidence
from harness.evaluate.family import FamilyResult
from harness.evaluate.units import UnitTable, is_unit_table
from harness.metrics._names import value_range
from harness.metrics.stats import (BOOTSTRAP_METHODS, METHODS, DeltaInference, Estimand, SumStatistic,
                                   WeightedStatistic, bootstrap_estimands, bootstrap_if_defined, bootstrap_weighted,
                                   clip_interval, difference_bounds, infer_paired_means, minimum_detectable_effect,
                                   paired_weighted_difference, relative_bounds)

Bounds = tuple[float, float]

# One-sided level and power at which every comparison reports its minimum detectable effect.
MDE_ALPHA = 0.05
MDE_POWER = 0.8


@dataclass
class MetricComparison:
    """One metric, one candidate vs the baseline.

    ``delta`` = candidate - baseline, ``relative_delta`` = candidate / baseline - 1 (None
    when the baseline value is 0), each with its own interval; ``mde`` and
    ``relative_mde`` are the effects a one-sided test at 5% detects with 80% power at
    this sample size; ``note`` says why the comparison cannot settle the gate (e.g.
    a low effective sample size), if it cannot.
    """

    metric: str
    baseline: str
    candidate: str
    baseline_value: float
    candidate_value: float
    delta: float
    relative_delta: float | None
    ci_low: float
    ci_high: float
    relative_ci_low: float | None
    relative_ci_high: float | None
    p_two_sided: float
    std_error: float
    n_units: int
    mde: float
    relative_mde: float | None
    method: str
    confidence: float
    kind: str = "mean"
    note: str | None = None
    inference: DeltaInference | None = field(default=None, repr=False)
    relative_inference: DeltaInference | None = field(default=None, repr=False)
    details: dict = field(default_factory=dict, repr=False)  # extra row columns a family adds (Effect.details)

    def to_row(self) -> dict:
        row = {k: v for k, v in asdict(self).items() if k not in ("inference", "relative_inference", "details")}
        row.update(self.details)
        return row

    def __post_init__(self) -> None:
        if self.inference is None:
            raise DataValidationError(f"comparison of {self.metric!r}: needs an inference")


def inference_fields(inf: DeltaInference, rel: DeltaInference | None) -> dict:
    return dict(delta=inf.estimate, ci_low=inf.ci_low, ci_high=inf.ci_high,
                relative_delta=None if rel is None else rel.estimate,
                relative_ci_low=None if rel is None else rel.ci_low,
                relative_ci_high=None if rel is None else rel.ci_high,
                p_two_sided=inf.p_two_sided(0.0), std_error=inf.std_error, n_units=inf.n_units,
                mde=minimum_detectable_effect(inf.std_error, alpha=MDE_ALPHA, power=MDE_POWER),
                relative_mde=None if rel is None else minimum_detectable_effect(
                    rel.std_error, alpha=MDE_ALPHA, power=MDE_POWER),
                inference=inf, relative_inference=rel)


def require_metrics(model: str, columns: Sequence[str] | pd.Index, metrics: Sequence[str]) -> None:
    """Refuse a model whose per-unit table lacks some of the compared ``metrics``."""
    missing = [m for m in metrics if m not in columns]
    if missing:
        raise DataValidationError(f"compare: model {model!r} has no per-unit values for "
                                  f"{len(missing)} metric(s), e.g. {missing[:3]}")


def paired_frame(per_unit: Mapping[str, pd.DataFrame], baseline: str, candidate: str,
                 metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align two models' per-unit tables on their units; refuse any mismatch."""
    for model in (baseline, candidate):
        if model not in per_unit:
            raise ConfigError(f"compare: no per-unit values for model {model!r}; have {sorted(per_unit)}")
        require_metrics(model, per_unit[model].columns, metrics)
    base, cand = per_unit[baseline][metrics], per_unit[candidate][metrics]
    for model, table in ((baseline, base), (candidate, cand)):
        dup = table.index[table.index.duplicated()]
        if len(dup):
            raise DataValidationError(f"compare: model {model!r} has {len(dup)} duplicated unit ids, "
                                      f"e.g. {list(dup[:3])}")
    if not base.index.equals(cand.index):
        only_base = base.index.difference(cand.index)
        only_cand = cand.index.difference(base.index)
        if len(only_base) or len(only_cand):
            example = list(only_base[:2]) + list(only_cand[:2])
            raise DataValidationError(
                f"cannot pair {candidate!r} with {baseline!r}: {len(only_base)} units only in the "
                f"baseline, {len(only_cand)} only in the candidate (e.g. {example})")
        cand = cand.loc[base.index]
    return base, cand


def _ranges(c: SumStatistic | WeightedStatistic, b: SumStatistic | WeightedStatistic,
            given: Bounds | None) -> tuple[Bounds | None, Bounds | None]:
    """Ranges of the delta and of the relative delta: from the metric's range when given,
    else from the two statistics' own ``bounds``."""
    rc, rb = (given, given) if given is not None else (c.bounds, b.bounds)
    return difference_bounds(rc, rb), relative_bounds(rc, rb)


def _compare_statistics(base_stats: Mapping[str, SumStatistic], cand_stats: Mapping[str, SumStatistic],
                        names: list[str], *, method: str, confidence: float, n_resamples: int, seed: int,
                        weights: str, bounds: Mapping[str, Bounds]
                        ) -> list[tuple[float, float, DeltaInference, DeltaInference | None, str]]:
    """Ratio-type metrics: delta and relative delta from one shared bootstrap of the units."""
    for name in names:
        if not isinstance(base_stats[name], SumStatistic):
            raise DataValidationError(f"compare: metric {name!r} of the baseline is a "
                                      f"{type(base_stats[name]).__name__}, of the candidate a SumStatistic; "
                                      "both sides need the same kind of statistic")
    cols, ests, values = [], [], []
    offset = 0
    n_units = {cand_stats[m].n_units for m in names} | {base_stats[m].n_units for m in names}
    if len(n_units) != 1:
        raise DataValidationError(f"ratio-type metrics {names}: cover different unit counts {sorted(n_units)}")
    for name in names:
        b, c = base_stats[name], cand_stats[name]
        kc, kb = c.parts.shape[1], b.parts.shape[1]
        cs, bs = np.arange(offset, offset + kc), np.arange(offset + kc, offset + kc + kb)
        offset += kc + kb
        cols += [c.parts, b.parts]
        bval, cval = b.value(), c.value()
        values.append((bval, cval))

        def delta(s: np.ndarray, t: np.ndarray, fc=c.combine, fb=b.combine, kc=kc) -> np.ndarray:
            return fc(s[..., :kc], t) - fb(s[..., kc:], t)

        def rel(s: np.ndarray, t: np.ndarray, fc=c.combine, fb=b.combine, kc=kc) -> np.ndarray:
            return fc(s[..., :kc], t) / fb(s[..., kc:], t) - 1.0

        # a bias-corrected statistic's resamples use its resample_combine (see SumStatistic)
        boot = c.resample_combine is not None or b.resample_combine is not None
        fc, fb = c.bootstrap_combine, b.bootstrap_combine
        both = np.concatenate([cs, bs])
        d_range, r_range = _ranges(c, b, bounds.get(name))
        ests.append(Estimand(both, delta, d_range, partial(delta, fc=fc, fb=fb) if boot else None))
        ests.append(Estimand(both, rel, r_range, partial(rel, fc=fc, fb=fb) if boot else None)
                    if bval != 0 else None)
    parts = np.hstack(cols)
    options = dict(method=method, confidence=confidence, n_resamples=n_resamples, seed=seed, weights=weights)
    try:
        infs = iter(bootstrap_estimands(parts, [e for e in ests if e is not None], **options))
        pairs = [(next(infs), next(infs) if ests[2 * i + 1] is not None else None) for i in range(len(values))]
    except DataValidationError:
        # a relative delta undefined on some resample (the baseline's value is 0 there, e.g.
        # a well-calibrated baseline's debiased ECE) gets no interval; the deltas are always
        # defined (same seed: same resamples)
        absolute = bootstrap_estimands(parts, ests[0::2], **options)
        pairs = [(a, bootstrap_if_defined(parts, ests[2 * i + 1], options)) for i, a in enumerate(absolute)]
    return [(bval, cval, a, r, method) for (bval, cval), (a, r) in zip(values, pairs)]


def _compare_weighted(base: WeightedStatistic, cand: WeightedStatistic, name: str, *, method: str,
                      confidence: float, n_resamples: int, seed: int, weights: str,
                      bounds: Mapping[str, Bounds]) -> tuple[float, float, DeltaInference, DeltaInference | None, str]:
    """A general weighted statistic (AUC, calibration slope): delta and relative delta."""
    for side, stat in (("baseline", base), ("candidate", cand)):
        if not isinstance(stat, WeightedStatistic):
            raise DataValidationError(f"compare: metric {name!r} of the {side} is a {type(stat).__name__}; "
                                      "both sides need the same kind of statistic")
    bval, cval = base.value(), cand.value()
    stats_ = [paired_weighted_difference(cand, base)]
    if bval != 0:
        stats_.append(paired_weighted_difference(cand, base, relative=True))
    infs = bootstrap_weighted(stats_, method=method, confidence=confidence, n_resamples=n_resamples,
                              seed=seed, weights=weights)
    d_range, r_range = _ranges(cand, base, bounds.get(name))
    return (bval, cval, clip_interval(infs[0], d_range),
            clip_interval(infs[1], r_range) if bval != 0 else None, method)


def compare_models(
    per_unit: Mapping[str, pd.DataFrame],
    *,
    baseline: str,
    candidates: list[str],
    metrics: list[str],
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: str = "auto",
    statistics: Mapping[str, Mapping[str, SumStatistic | WeightedStatistic]] | None = None,
    notes: Mapping[tuple[str, str], str] | None = None,
    bounds: Mapping[str, Bounds] | None = None,
) -> list[MetricComparison]:
    """Paired comparison of each candidate with the baseline on every metric.

    Parameters
    ----------
    per_unit : mapping model -> DataFrame
        Indexed by unit id, one column per mean-type metric.
    metrics : list of str
        Metrics to compare: columns of ``per_unit`` or keys of ``statistics``.
    method : {"bootstrap", "bca", "t_test", "randomization"}
        Percentile or BCa paired bootstrap, paired t-test (relative delta by the delta
        method), or paired sign-flip randomisation test (interval by test inversion).
    weights : {"auto", "multinomial", "poisson"}
        Bootstrap weights (see :func:`harness.metrics.stats.bootstrap_sums`).
    statistics : mapping model -> metric -> SumStatistic or WeightedStatistic, optional
        Ratio-type metrics (``SumStatistic``: functions of column sums, such as SNIPS
        and ECE) and other statistics of weighted units (``WeightedStatistic``: AUC,
        calibration slope). The candidate's and the baseline's statistic of a metric
        must have one row per unit, the same units in the same order (e.g. the logged
        rounds of an off-policy data set). Always bootstrapped: with ``method``
        ``t_test`` or ``randomization`` they get BCa, and the row's ``method`` says so.
    notes : mapping (candidate, metric) -> str, optional
        Why a comparison cannot settle the gate (e.g. ``"effective sample size 40 <
        100"``); the gate then reports that criterion INCONCLUSIVE.
    bounds : mapping metric -> (low, high), optional
        The range of a metric's values (nDCG: (0, 1)). Its delta's interval is kept in
        [low - high, high - low] and, for a non-negative metric, its relative delta's
        above -1 (:func:`~harness.metrics.stats.clip_interval`: intersecting a
        confidence set with the parameter space keeps its coverage). A statistic
        without an entry uses its own ``bounds``.

    Notes
    -----
    All metrics of a candidate share one resample of the units (seed ``seed + i`` for
    the i-th candidate), which keeps their correlation.
    """
    check_choice(method, METHODS, name="compare.method")
    check_confidence(confidence, name="compare.confidence")
    if not candidates:
        raise ConfigError("compare.candidates: need at least one candidate")
    if baseline in candidates:
        raise ConfigError(f"compare: the baseline {baseline!r} cannot also be a candidate")
    statistics = statistics or {}
    notes = notes or {}
    bounds = bounds or {}
    rows: list[MetricComparison] = []
    for c_index, candidate in enumerate(candidates):
        stat_names = [m for m in metrics if m in statistics.get(candidate, {})]
        mean_names = [m for m in metrics if m not in stat_names]
        results: dict[str, tuple] = {}
        if mean_names:
            base, cand = paired_frame(per_unit, baseline, candidate, mean_names)
            absolute, relative = infer_paired_means(
                cand.to_numpy(dtype=np.float64), base.to_numpy(dtype=np.float64), method=method,
                confidence=confidence, n_resamples=n_resamples, seed=seed + c_index, weights=weights,
                bounds=[bounds.get(m) for m in mean_names])
            for j, name in enumerate(mean_names):
                results[name] = (float(base[name].mean()), float(cand[name].mean()), absolute[j],
                                 relative[j], method, "mean")
        if stat_names:
            missing = [m for m in stat_names if m not in statistics.get(baseline, {})]
            if missing:
                raise DataValidationError(f"compare: ratio-type metric(s) {missing} given for {candidate!r} "
                                          f"but not for the baseline {baseline!r}")
            used = method if method in BOOTSTRAP_METHODS else "bca"
            kwargs = dict(method=used, confidence=confidence, n_resamples=n_resamples, seed=seed + c_index,
                          weights=weights, bounds=bounds)
            sums = [m for m in stat_names if isinstance(statistics[candidate][m], SumStatistic)]
            general = [m for m in stat_names if m not in sums]
            if sums:
                for name, res in zip(sums, _compare_statistics(statistics[baseline], statistics[candidate],
                                                               sums, **kwargs)):
                    results[name] = (*res, "statistic")
            for name in general:
                results[name] = (*_compare_weighted(statistics[baseline][name], statistics[candidate][name],
                                                    name, **kwargs), "statistic")
        for name in metrics:
            b_val, c_val, inf, rel, used_method, kind = results[name]
            rows.append(MetricComparison(
                metric=name, baseline=baseline, candidate=candidate, baseline_value=b_val,
                candidate_value=c_val, method=used_method, confidence=confidence, kind=kind,
                note=notes.get((candidate, name)), **inference_fields(inf, rel)))
    return rows


def compare_family(
    result: FamilyResult,
    *,
    baseline: str,
    candidates: list[str],
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[MetricComparison]:
    """Paired comparisons of one family's compared metrics, candidate vs baseline.

    Mean-type metrics pair the models' per-unit tables, ratio-type metrics their sum
    statistics; a family of disjoint units (``pairing`` "independent", an A/B test's
    variants) brings its own effects, which become the comparisons as they are (at their
    own level: ``method``, ``confidence`` and ``n_resamples`` unused); a metric capped on
    either side (``ModelOutput.caps``, e.g. too little overlap with the logs) carries the reason as its ``note``, so the gate never lets it
    PASS. Empty when the family compares nothing or measured neither side (e.g. a model
    without ``predict_proba`` in calibration). Metrics with a known range (the family's
    ``ranges``, e.g. the reward range of logged feedback, else
    :func:`harness.metrics._names.value_range`: nDCG in [0, 1], log loss >= 0, ...) get
    intervals kept inside it.
    """
    names = [baseline, *candidates]
    outputs = result.models
    if not result.compared or any(n not in outputs for n in names):
        return []
    if result.pairing == "independent":  # disjoint units: the family estimated each effect itself
        return [MetricComparison(metric=e.metric, baseline=e.baseline, candidate=e.candidate,
                                 baseline_value=e.baseline_value, candidate_value=e.candidate_value,
                                 method=e.absolute.method, confidence=e.confidence, kind=result.family,
                                 details=dict(e.details), **inference_fields(e.absolute, e.relative))
                for e in result.effects
                if e.baseline == baseline and e.candidate in candidates and e.metric in result.compared]
    notes = {}
    for candidate in candidates:
        for metric in result.compared:
            reasons = [f"{who}: {outputs[who].caps[metric]}" for who in (baseline, candidate)
                       if metric in outputs[who].caps]
            if reasons:
                notes[(candidate, metric)] = "; ".join(reasons)
    statistics = {n: outputs[n].statistics for n in names if outputs[n].statistics}
    ranges = {m: r for m in result.compared if (r := result.ranges.get(m) or value_range(m)) is not None}
    tables = {n: outputs[n].per_unit for n in names}
    if any(is_unit_table(t) for t in tables.values()):
        return _compare_kept(tables, baseline=baseline, candidates=candidates, metrics=result.compared,
                             common=result.pairing == "common", method=method, confidence=confidence,
                             n_resamples=n_resamples, seed=seed, bounds=ranges, notes=notes,
                             statistics=bool(statistics))
    per_unit: dict[str, pd.DataFrame] = {n: t for n, t in tables.items() if isinstance(t, pd.DataFrame)}
    if result.pairing == "common":  # units some model lacks (e.g. skipped queries) leave every comparison
        common = per_unit[baseline].index
        for n in candidates:
            common = common.intersection(per_unit[n].index)
        per_unit = {n: t.loc[common] for n, t in per_unit.items()}
    return compare_models(per_unit, baseline=baseline, candidates=candidates,
                          metrics=result.compared, method=method, confidence=confidence,
                          n_resamples=n_resamples, seed=seed, statistics=statistics or None, notes=notes,
                          bounds=ranges)


def _compare_kept(tables: Mapping[str, pd.DataFrame | UnitTable], *, baseline: str, candidates: list[str],
                  metrics: list[str], common: bool, method: str, confidence: float, n_resamples: int, seed: int,
                  bounds: Mapping[str, Bounds], notes: Mapping[tuple[str, str], str],
                  statistics: bool) -> list[MetricComparison]:
    """:func:`compare_models` on per-unit tables kept by their backend
    (:class:`~harness.evaluate.units.UnitTable`): the units are paired where the tables
    are (``common``: on the units every model has) and only the inferences come back; a
    frame among them (a stored run's values) joins them as a table of their kind."""
    check_choice(method, METHODS, name="compare.method")
    check_confidence(confidence, name="compare.confidence")
    if statistics:
        raise ConfigError("compare: ratio-type statistics cannot be paired with per-unit values kept by the backend")
    kept = next(t for t in tables.values() if is_unit_table(t))
    as_kept = {n: kept.like(t) if isinstance(t, pd.DataFrame) else t for n, t in tables.items()}
    for model in (baseline, *candidates):
        require_metrics(model, as_kept[model].columns, metrics)
    found = as_kept[baseline].paired_means([as_kept[c] for c in candidates], metrics, common=common, method=method,
                                           confidence=confidence, n_resamples=n_resamples, seed=seed, bounds=bounds,
                                           names=[baseline, *candidates])
    return [MetricComparison(metric=p.metric, baseline=baseline, candidate=candidate,
                             baseline_value=p.baseline_value, candidate_value=p.candidate_value, method=method,
                             confidence=confidence, kind="mean", note=notes.get((candidate, p.metric)),
                             **inference_fields(p.absolute, p.relative))
            for candidate, pairs in zip(candidates, found) for p in pairs]
