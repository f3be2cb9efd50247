"""An A/B test through the gate: per-metric effects -> comparisons -> PASS / FAIL /
INCONCLUSIVE, or INVALID when the sample ratio is off.

Each (treatment, metric) effect becomes a :class:`MetricComparison` (control as the
baseline, the treatment as the candidate), so the gate of :mod:`harness.inference.gate`
decides it in its own language: superiority for a primary metric, non-inferiority for a
guardrail, Holm / BH over every criterion x treatment on the fail side. A sample ratio
mismatch (chi-square p below ``analysis.srm_threshold``) overrides the decision with
INVALID: the assignment or the logging is broken and no metric can be trusted.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from harness.inference.gate import Verdict, decide
from harness.inference.paired import MetricComparison, inference_fields
from harness.metrics.ab import (ABEffect, ABMetric, Ratio, SampleRatioMismatch, VariantMoments, analyze_metric,
                                heterogeneity_test, sample_ratio_mismatch)
from harness.spec.ab import ABConfig, ABMetricSpec

INVALID = "INVALID"


def ab_metric(name: str, spec: ABMetricSpec) -> ABMetric:
    """The numerics' metric of a config entry (mean, proportion or ratio, with covariate)."""
    if spec.ratio is not None:
        value = Ratio(*spec.ratio)
    else:
        value = Ratio(spec.mean or spec.proportion or "")
    cov = spec.covariate
    covariates = () if cov is None else ((Ratio(cov),) if isinstance(cov, str) else (Ratio(*cov),))
    return ABMetric(name, value, covariates)


def metric_columns(config: ABConfig) -> list[str]:
    """Every column the configured metrics read, in order."""
    return list(dict.fromkeys(c for n, s in config.metrics.items() for c in ab_metric(n, s).columns))


@dataclass
class ABOutcome:
    """Everything one A/B analysis decided: effects, gate comparisons, the verdict (its
    decision INVALID on a sample ratio mismatch), the SRM test, design notes."""

    effects: list[ABEffect]
    comparisons: list[MetricComparison]
    verdict: Verdict
    srm: SampleRatioMismatch
    design: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    heterogeneity: list[dict[str, Any]] = field(default_factory=list)
    windows: list[dict[str, Any]] = field(default_factory=list)
    window_heterogeneity: list[dict[str, Any]] = field(default_factory=list)


def to_comparison(effect: ABEffect, confidence: float) -> MetricComparison:
    return MetricComparison(
        metric=effect.metric, baseline=effect.control.variant, candidate=effect.treatment.variant,
        baseline_value=effect.control.value, candidate_value=effect.treatment.value,
        method=effect.absolute.method, confidence=confidence, kind="ab",
        **inference_fields(effect.absolute, effect.relative))


def _metrics(config: ABConfig, clustered: bool) -> list[ABMetric]:
    return [ab_metric(n, s).per_cluster() if clustered else ab_metric(n, s) for n, s in config.metrics.items()]


def analyze_segments(config: ABConfig, segments: dict[str, list[VariantMoments]], *, clustered: bool = False,
                     label: str = "segment") -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """Per-segment effects with Bonferroni-corrected intervals (level 1 - (1 - confidence) / S
    for S segments, so that all S intervals of a metric cover together) and, per metric
    and treatment, Cochran's Q test of one effect for all segments. Fixed-horizon
    intervals; a segment with fewer than 2 units in a variant is left out and named.
    Informational: the gate decides on the whole experiment. Time windows of a holdout
    are analysed the same way (``label="window"``): the rows are the effect curve, the
    Q test asks whether the effect is constant over time (novelty, decay) — a test on
    windows that share units is approximate (it assumes independent windows)."""
    a = config.analysis
    usable = {g: m for g, m in segments.items() if min(x.n for x in m) >= 2}
    notes = [f"{label} {g!r} left out of the per-{label} analysis: fewer than 2 units in a variant"
             for g in segments if g not in usable]
    if not usable:
        return [], [], notes
    level = 1 - (1 - a.confidence) / len(usable)
    rows: list[dict[str, Any]] = []
    for metric in _metrics(config, clustered):
        for segment, moments in usable.items():
            for e in analyze_metric(moments, metric, control=config.variants.control, confidence=level,
                                    cuped=a.cuped, relative=a.relative_interval):
                rel = e.relative
                rows.append({"metric": metric.name, "treatment": e.treatment.variant, label: segment,
                             "delta": e.absolute.estimate, "ci_low": e.absolute.ci_low,
                             "ci_high": e.absolute.ci_high, "std_error": e.absolute.std_error,
                             "relative_delta": None if rel is None else rel.estimate,
                             "relative_ci_low": None if rel is None else rel.ci_low,
                             "relative_ci_high": None if rel is None else rel.ci_high,
                             "confidence": level, "n_control": e.control.n, "n_treatment": e.treatment.n})
    tests = []
    for metric in config.metrics:
        for treatment in config.variants.treatments:
            part = [r for r in rows if r["metric"] == metric and r["treatment"] == treatment and r["std_error"] > 0]
            if len(part) < 2:
                continue
            h = heterogeneity_test(np.array([r["delta"] for r in part]), np.array([r["std_error"] for r in part]))
            tests.append({"metric": metric, "treatment": treatment, f"{label}s": len(part), "q": h.q, "df": h.df,
                          "p_value": h.p_value, "i2": h.i2, "pooled_delta": h.pooled})
    return rows, tests, notes


def analyze_experiment(config: ABConfig, moments: Sequence[VariantMoments], *, clustered: bool = False,
                       warnings: Sequence[str] = (),
                       segments: dict[str, list[VariantMoments]] | None = None,
                       windows: dict[str, list[VariantMoments]] | None = None) -> ABOutcome:
    """Analyse every configured metric of every treatment and apply the gate.

    ``moments`` has one entry per configured variant (control first); with ``clustered``
    they are per-cluster totals with a unit-count column, and every metric is analysed
    as a ratio of cluster totals (cluster-robust). ``segments`` (segment -> moments of
    each variant) adds per-segment effects and heterogeneity tests, ``windows`` (row-level
    moments of each time window) the effect curve of a holdout (:func:`analyze_segments`)."""
    a = config.analysis
    seq = a.sequential
    effects: list[ABEffect] = []
    for metric in _metrics(config, clustered):
        effects += analyze_metric(moments, metric, control=config.variants.control, confidence=a.confidence,
                                  cuped=a.cuped, relative=a.relative_interval,
                                  sequential=seq.kind == "always_valid", horizon=seq.horizon)
    comparisons = [to_comparison(e, a.confidence) for e in effects]
    verdict = decide(list(config.gate), comparisons, correction=a.correction)
    srm = sample_ratio_mismatch({m.variant: m.n for m in moments}, config.variants.planned(),
                                threshold=a.srm_threshold)
    if srm.invalid:
        verdict = dataclasses.replace(verdict, decision=INVALID, reasons=[f"INVALID: {srm.message}; the "
                                      "assignment or the logging is broken, so no metric can be trusted "
                                      "(criteria below for information only)", *verdict.reasons])
    seg_rows, het, notes = analyze_segments(config, segments, clustered=clustered) if segments else ([], [], [])
    win_rows, win_het, win_notes = (analyze_segments(config, windows, label="window") if windows else ([], [], []))
    return ABOutcome(effects, comparisons, verdict, srm, warnings=[*warnings, *notes, *win_notes],
                     segments=seg_rows, heterogeneity=het, windows=win_rows, window_heterogeneity=win_het)
