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

from harness.inference.gate import Verdict, decide
from harness.inference.paired import MetricComparison, inference_fields
from harness.metrics.ab import (ABEffect, ABMetric, Ratio, SampleRatioMismatch, VariantMoments, analyze_metric,
                                sample_ratio_mismatch)
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


def to_comparison(effect: ABEffect, confidence: float) -> MetricComparison:
    return MetricComparison(
        metric=effect.metric, baseline=effect.control.variant, candidate=effect.treatment.variant,
        baseline_value=effect.control.value, candidate_value=effect.treatment.value,
        method=effect.absolute.method, confidence=confidence, kind="ab",
        **inference_fields(effect.absolute, effect.relative))


def analyze_experiment(config: ABConfig, moments: Sequence[VariantMoments], *, clustered: bool = False,
                       warnings: Sequence[str] = ()) -> ABOutcome:
    """Analyse every configured metric of every treatment and apply the gate.

    ``moments`` has one entry per configured variant (control first); with ``clustered``
    they are per-cluster totals with a unit-count column, and every metric is analysed
    as a ratio of cluster totals (cluster-robust)."""
    a = config.analysis
    seq = a.sequential
    effects: list[ABEffect] = []
    for name, spec in config.metrics.items():
        metric = ab_metric(name, spec)
        if clustered:
            metric = metric.per_cluster()
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
    return ABOutcome(effects, comparisons, verdict, srm, warnings=list(warnings))
