"""The A/B test as an evaluation family (key ``ab``): experiment data -> sufficient
statistics -> per-variant metrics, treatment effects, sample ratio check, segments,
a holdout's effect curve and its launches.

The variants are the family's models (the control the baseline, the treatments the
candidates), each measured on its own users: ``pairing`` is "independent", and the
family estimates every treatment-minus-control :class:`~harness.evaluate.family.Effect`
itself, from the variants' moments (Welch, delta method, CUPED, confidence sequences:
:mod:`harness.metrics.ab`). It measures no model (``measures_models = False``): its data
say what is compared. Comparison rows, gate, results folder, report and MLflow then
treat it as any family; a sample ratio mismatch sets ``FamilyResult.invalid``, which
makes the verdict INVALID.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from harness.datasets.experiment import PeriodGroup, data_fingerprint, natural_order
from harness.datasets.tables import read_table
from harness.errors import DataValidationError
from harness.evaluate.backend import LOCAL, Backend
from harness.evaluate.family import Effect, Family, FamilyResult, FigureDraw, MetricValue, ModelOutput
from harness.metrics.ab import (UNITS, ABEffect, ABMetric, Ratio, VariantMoments, add_moments, analyze_metric,
                                heterogeneity_test, moments_from_table, moments_table, sample_ratio_mismatch,
                                segmented_moments_from_table)
from harness.metrics.holdout import ROWS, launch_effect, period_column
from harness.spec.ab import ABFamilySpec, ABMetricSpec, ExperimentSpec

STATISTICS_FILE = "statistics.csv"


def ab_metric(name: str, spec: ABMetricSpec) -> ABMetric:
    """The numerics' metric of a config entry (mean, proportion or ratio, with covariate)."""
    value = Ratio(*spec.ratio) if spec.ratio is not None else Ratio(spec.mean or spec.proportion or "")
    cov = spec.covariate
    covariates = () if cov is None else ((Ratio(cov),) if isinstance(cov, str) else (Ratio(*cov),))
    return ABMetric(name, value, covariates)


def metric_columns(spec: ExperimentSpec) -> list[str]:
    """Every column the configured metrics read, in order."""
    return list(dict.fromkeys(c for n, s in spec.metrics.items() for c in ab_metric(n, s).columns))


@dataclass
class ExperimentStatistics:
    """The variants' sufficient statistics (control first), per segment when segmented and
    per time window for a holdout, a description of the design, and warnings."""

    moments: list[VariantMoments]
    segments: dict[str, list[VariantMoments]] | None
    design: dict[str, Any]
    warnings: list[str]
    windows: dict[str, list[VariantMoments]] | None = None

    @property
    def clustered(self) -> bool:
        return self.design.get("variance") == "cluster-robust"


def _from_statistics(spec: ABFamilySpec) -> ExperimentStatistics:
    names, cols, data = spec.variants.names, spec.columns, spec.data
    table = read_table(data, id_columns=[cols.variant, *([cols.segment] if cols.segment else [])])
    segments = None
    if cols.segment:
        segments = segmented_moments_from_table(table, segment=cols.segment, variant=cols.variant, source=data)
        found = {m.variant for part in segments.values() for m in part}
    else:
        found = {m.variant for m in moments_from_table(table, variant=cols.variant, source=data)}
    if found != set(names):
        raise DataValidationError(f"{data}: variants {sorted(found)} but the config names {names}")
    if segments is not None:
        for g, part in segments.items():
            if {m.variant for m in part} != set(names):
                raise DataValidationError(f"{data}: segment {g!r} lacks a row for variant(s) "
                                          f"{sorted(set(names) - {m.variant for m in part})}")
        segments = {g: sorted(part, key=lambda m: names.index(m.variant)) for g, part in segments.items()}
        moments = [add_moments([part[v] for part in segments.values()]) for v in range(len(names))]
    else:
        have = {m.variant: m for m in moments_from_table(table, variant=cols.variant, source=data)}
        moments = [have[n] for n in names]
    for where, part in (segments or {None: moments}).items():
        _check_proportion_sums(part, [s.proportion for s in spec.metrics.values() if s.proportion],
                               data if where is None else f"{data} (segment {where!r})")
    design: dict[str, Any] = {"input": "statistics", "unit": "unit", "n_units": sum(m.n for m in moments),
                              "fingerprint": data_fingerprint(data)}
    if UNITS in moments[0].columns:  # per-cluster totals (the statistics.csv of a clustered or holdout run)
        design.update(n_clusters=design["n_units"], variance="cluster-robust")
    return ExperimentStatistics(moments, segments, design, [])


def _check_proportion_sums(moments: list[VariantMoments], proportions: list[str], source: str) -> None:
    """A proportion's sum counts units with the outcome: between 0 and the units (n, or
    the clusters' unit counts for per-cluster totals)."""
    for m in moments:
        for col in (c for c in proportions if c in m.columns):
            total = m.sums[m.columns.index(col)]
            units = m.sums[m.columns.index(UNITS)] if UNITS in m.columns else m.n
            if not 0 <= total <= units:
                raise DataValidationError(f"{source}: variant {m.variant!r}: sum({col}) = {total:.6g} with {units:.6g} "
                                          f"units: a proportion's sum counts units, so it lies in [0, {units:.6g}]")


def load_statistics(spec: ABFamilySpec, backend: Backend = LOCAL) -> ExperimentStatistics:
    """Read per-unit data or a statistics table into sufficient statistics: per cluster
    (cluster-robust) when ``columns.cluster`` is set and ``analysis.variance`` is auto.
    Per-unit data are reduced by ``backend`` (where it reads them: Spark under
    ``engine: {kind: spark}``)."""
    if spec.input == "statistics":
        return _from_statistics(spec)
    names, cols = spec.variants.names, spec.columns
    binary = [s.proportion for s in spec.metrics.values() if s.proportion]
    counts = [s.ratio[1] for s in spec.metrics.values() if s.ratio]  # denominators: impressions, sessions
    robust = spec.analysis.variance == "auto"
    cluster = cols.cluster or (cols.unit if cols.window else None)  # a holdout's units repeat over windows
    red = backend.unit_statistics(spec.data, variant=cols.variant, columns=metric_columns(spec), variants=names,
                                  unit=cols.unit, cluster=cluster, segment=cols.segment, window=cols.window,
                                  binary=binary, counts=counts, cluster_robust=robust)
    design: dict[str, Any] = {"input": "units", "unit": cols.unit or "row", "n_units": red.n_units,
                              "fingerprint": backend.data_fingerprint(spec.data)}
    warnings: list[str] = []
    if cluster:
        design.update(randomization_unit=cluster, n_clusters=red.n_clusters,
                      variance="cluster-robust" if red.clustered else "iid")
    if red.windows:
        design.update(window=cols.window, n_windows=len(red.windows), n_rows=red.n_units, n_units=red.n_clusters)
    if cluster and not red.clustered:
        warnings.append(f"the unit of analysis ({cols.unit or 'row'}) is finer than the unit of randomisation "
                        f"({cluster}, {red.n_clusters} clusters) and analysis.variance is 'iid': the "
                        "intervals ignore the correlation within clusters and are too narrow (false positives "
                        "above alpha); use variance: auto for cluster-robust variance")
    return ExperimentStatistics(red.moments, red.segments, design, warnings, red.windows)


def statistics_table(data_stats: ExperimentStatistics, segment: str | None) -> pd.DataFrame:
    """``statistics.csv``: the sufficient statistics, one row per variant (per segment and
    variant when segmented), readable back with ``input: statistics``."""
    if data_stats.segments is None or segment is None:
        return moments_table(data_stats.moments)
    parts = [moments_table(part) for part in data_stats.segments.values()]
    for part, g in zip(parts, data_stats.segments):
        part.insert(0, segment, g)
    return pd.concat(parts, ignore_index=True)


def _metrics(spec: ExperimentSpec, clustered: bool) -> list[ABMetric]:
    return [ab_metric(n, s).per_cluster() if clustered else ab_metric(n, s) for n, s in spec.metrics.items()]


def _relative(e: ABEffect) -> dict[str, float | None]:
    rel = e.relative
    return {"relative_delta": None if rel is None else rel.estimate,
            "relative_ci_low": None if rel is None else rel.ci_low,
            "relative_ci_high": None if rel is None else rel.ci_high}


def analyze_segments(spec: ExperimentSpec, segments: dict[str, list[VariantMoments]], *, clustered: bool = False,
                     label: str = "segment") -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Per-segment effects with Bonferroni-corrected intervals (level 1 - (1 - confidence) / S
    for S segments, so that all S intervals of a metric cover together) and, per metric
    and treatment, Cochran's Q test of one effect for all segments. Fixed-horizon
    intervals; a segment with fewer than 2 units in a variant is left out and named.
    Informational: the gate decides on the whole experiment. Time windows of a holdout
    are analysed the same way (``label="window"``): the rows are the effect curve, the
    Q test asks whether the effect is constant over time (novelty, decay) — a test on
    windows that share units is approximate (it assumes independent windows)."""
    a = spec.analysis
    usable = {g: m for g, m in segments.items() if min(x.n for x in m) >= 2}
    notes = [f"{label} {g!r} left out of the per-{label} analysis: fewer than 2 units in a variant"
             for g in segments if g not in usable]
    if not usable:
        return [], [], notes
    level = 1 - (1 - a.confidence) / len(usable)
    rows: list[dict[str, Any]] = []
    for metric in _metrics(spec, clustered):
        for segment, moments in usable.items():
            for e in analyze_metric(moments, metric, control=spec.variants.control, confidence=level,
                                    cuped=a.cuped, relative=a.relative_interval):
                rows.append({"metric": metric.name, "treatment": e.treatment.variant, label: segment,
                             "delta": e.absolute.estimate, "ci_low": e.absolute.ci_low,
                             "ci_high": e.absolute.ci_high, "std_error": e.absolute.std_error, **_relative(e),
                             "confidence": level, "n_control": e.control.n, "n_treatment": e.treatment.n})
    tests = []
    for metric_name in spec.metrics:
        for treatment in spec.variants.treatments:
            part = [r for r in rows if r["metric"] == metric_name and r["treatment"] == treatment
                    and r["std_error"] > 0]
            if len(part) < 2:
                continue
            h = heterogeneity_test(np.array([r["delta"] for r in part]), np.array([r["std_error"] for r in part]))
            tests.append({"metric": metric_name, "treatment": treatment, f"{label}s": len(part), "q": h.q,
                          "df": h.df, "p_value": h.p_value, "i2": h.i2, "pooled_delta": h.pooled})
    return rows, tests, notes


def analyze_launches(spec: ABFamilySpec, backend: Backend = LOCAL) -> list[dict[str, Any]]:
    """Several launches sharing one holdout (``holdout.launches``): per launch and metric,
    the cumulative effect of every launch so far over the launch's period and the
    launch's own increment (:mod:`harness.metrics.holdout`), at the Bonferroni level over
    the launches, so that all launches' intervals of a metric cover together."""
    holdout = spec.holdout
    if holdout is None or spec.columns.unit is None or spec.columns.window is None:
        return []
    cols, names = spec.columns, spec.variants.names
    launches = holdout.launches
    # the rows a launch changes (its surface's, or all) are cut into periods by every launch
    # that changes those rows too
    groups: dict[str | None, PeriodGroup] = {}
    for x in launches:  # group labels only name columns: "*" (every row) cannot clash with "=<surface>"
        starts = [y.start_label for y in launches if x.surface is None or y.surface in (None, x.surface)]
        groups[x.surface] = PeriodGroup("*" if x.surface is None else f"={x.surface}", x.surface,
                                        tuple(dict.fromkeys(starts)))
    metrics = {n: ab_metric(n, s) for n, s in spec.metrics.items()}
    columns = list(dict.fromkeys(c for m in metrics.values() for c in m.value.columns))
    moments = backend.unit_periods(spec.data, variant=cols.variant, unit=cols.unit, window=cols.window,
                                   columns=columns, variants=names, groups=list(groups.values()),
                                   surface=holdout.surface)
    level = 1 - (1 - spec.analysis.confidence) / len(launches)
    control = moments[0]
    rows = []
    for x in launches:
        group = groups[x.surface]
        order = sorted(set(group.starts), key=natural_order)
        period = order.index(x.start_label) + 1
        previous = period - 1 if period > 1 or _has_rows(control, group.label, 0) else None
        empty = [m.variant for m in moments if not _has_rows(m, group.label, period)]
        if empty:
            on = f" on surface {x.surface!r} ({holdout.surface!r} column)" if x.surface else ""
            check = (f"; check holdout.launches against the data: the start as the {cols.window!r} column writes it"
                     + (f", the surface as the {holdout.surface!r} column does (case included)" if x.surface else ""))
            raise DataValidationError(f"{spec.data}: launch {x.name!r} starts in window {x.start_label!r} "
                                      f"({cols.window!r} column){on}, but variant(s) {empty} have no rows from "
                                      f"then until the next launch{check}")
        for name, metric in metrics.items():
            for treatment in moments[1:]:
                e = launch_effect(control, treatment, metric.value, launch=x.name, metric_name=name,
                                  group=group.label, period=period, previous=previous, confidence=level)
                c, i = e.cumulative, e.increment
                rows.append({"launch": x.name, "start": x.start_label, "surface": x.surface, "metric": name,
                             "treatment": treatment.variant, "delta": i.absolute.estimate,
                             "ci_low": i.absolute.ci_low, "ci_high": i.absolute.ci_high,
                             "std_error": i.absolute.std_error, "cumulative_delta": c.absolute.estimate,
                             "cumulative_ci_low": c.absolute.ci_low, "cumulative_ci_high": c.absolute.ci_high,
                             **{f"cumulative_{k}": v for k, v in _relative(c).items()},
                             "baseline": "none (first launch)" if previous is None else (
                                 "before the first launch" if previous == 0 else f"from window {order[previous - 1]}"),
                             "confidence": level, "n_control": c.control.n, "n_treatment": c.treatment.n})
    return rows


def _has_rows(moments: VariantMoments, group: str, period: int) -> bool:
    return bool(moments.sums[moments.index([period_column(ROWS, group, period)])][0] > 0)


def _arm_values(effects: list[ABEffect], confidence: float) -> dict[str, list[MetricValue]]:
    """Each variant's unadjusted metric with its normal interval, metric by metric."""
    q = float(special.ndtri(0.5 + confidence / 2))
    out: dict[str, dict[str, MetricValue]] = {}
    for e in effects:
        for arm in (e.control, e.treatment):
            half = q * float(np.sqrt(arm.raw_variance))
            out.setdefault(arm.variant, {}).setdefault(
                e.metric, MetricValue(e.metric, arm.raw_value, arm.raw_value - half, arm.raw_value + half, arm.n))
    return {variant: list(values.values()) for variant, values in out.items()}


class ABFamily(Family[ABFamilySpec]):
    """An A/B test's variants measured on their own users (see the module docstring)."""

    key, unit, spec_type = "ab", "user", ABFamilySpec
    measures_models = False

    def measure(self, view: Any) -> ModelOutput | None:  # never called: measures_models is False
        raise NotImplementedError("the ab family measures its data, not models")

    @classmethod
    def restore(cls, folder: Path, data: dict[str, Any], *, confidence: float | None = None) -> FamilyResult:
        """The experiment's result again from a results folder's ``statistics.csv`` and
        config: the same effects, SRM and per-segment rows (a holdout's weekly curve and
        launches need the per-unit rows and are left out)."""
        config = data.get("config") or {}
        block = {k: config[k] for k in ExperimentSpec.model_fields if k in config}
        columns = {**(block.get("columns") or {}), "cluster": None, "window": None, "unit": None}
        analysis = {**(block.get("analysis") or {}), **({"confidence": confidence} if confidence else {})}
        spec = ABFamilySpec.model_validate({**block, "columns": columns, "analysis": analysis, "holdout": None,
                                            "input": "statistics", "data": str(Path(folder) / STATISTICS_FILE)})
        return cls(spec, None, seed=0, confidence=spec.analysis.confidence).finish({}, [])

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        from harness.evaluate.ab_plots import effect_curve_figure, effects_figure

        spec, a = self.spec, self.spec.analysis
        stats = load_statistics(spec, self.backend)
        seq = a.sequential
        effects: list[ABEffect] = []
        for metric in _metrics(spec, stats.clustered):
            effects += analyze_metric(stats.moments, metric, control=spec.variants.control, confidence=a.confidence,
                                      cuped=a.cuped, relative=a.relative_interval,
                                      sequential=seq.kind == "always_valid", horizon=seq.horizon)
        srm = sample_ratio_mismatch({m.variant: m.n for m in stats.moments}, spec.variants.planned(),
                                    threshold=a.srm_threshold)
        seg_rows, het, notes = (analyze_segments(spec, stats.segments, clustered=stats.clustered)
                                if stats.segments else ([], [], []))
        win_rows, win_het, win_notes = (analyze_segments(spec, stats.windows, label="window")
                                        if stats.windows else ([], [], []))
        launches = analyze_launches(spec, self.backend)
        empty = pd.DataFrame(index=pd.Index([], name="unit_id", dtype=str))
        models = {v: ModelOutput(per_unit=empty, values=values) for v, values in _arm_values(effects, a.confidence).items()}
        extra = {"srm": asdict(srm), "design": stats.design, "segments": seg_rows, "heterogeneity": het,
                 "windows": win_rows, "window_heterogeneity": win_het, "sequential": seq.model_dump(),
                 "statistics": STATISTICS_FILE, **({"launches": launches} if launches else {})}
        figures: dict[str, FigureDraw] = {"ab_effects": partial(effects_figure, effects)}
        if win_rows:
            figures["ab_effect_over_time"] = partial(effect_curve_figure, win_rows, spec.variants.control,
                                                     spec.columns.window or "window")
        return FamilyResult(
            self.key, self.unit, self.compared(), models, extra=extra, figures=figures, skipped=skipped,
            notices=[*stats.warnings, *notes, *win_notes], pairing="independent",
            effects=[Effect(e.metric, e.control.variant, e.treatment.variant, e.control.value, e.treatment.value,
                            e.absolute, e.relative, a.confidence,
                            {"variance_reduction": e.variance_reduction, "cuped_theta": e.theta.tolist()})
                     for e in effects],
            invalid=(f"{srm.message}; the assignment or the logging is broken, so no metric can be trusted"
                     if srm.invalid else None),
            files={STATISTICS_FILE: statistics_table(stats, spec.columns.segment).to_csv(index=False)})
