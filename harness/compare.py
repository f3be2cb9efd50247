"""Candidate vs baseline on the same units: paired deltas with intervals and p-values."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from harness.errors import DataValidationError
from harness.metrics.stats import DeltaInference, infer_paired_deltas, minimum_detectable_effect


@dataclass
class MetricComparison:
    """One metric, one candidate vs the baseline."""

    metric: str
    baseline: str
    candidate: str
    baseline_value: float
    candidate_value: float
    delta: float
    relative_delta: float | None
    ci_low: float
    ci_high: float
    n_units: int
    mde: float
    method: str
    inference: DeltaInference

    def to_row(self) -> dict:
        row = asdict(self)
        row.pop("inference")
        return row


def paired_frame(per_unit: dict[str, pd.DataFrame], baseline: str, candidate: str,
                 metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align two models' per-unit tables on their common units; refuse a mismatch."""
    base, cand = per_unit[baseline][metrics], per_unit[candidate][metrics]
    if not base.index.equals(cand.index):
        only_base = base.index.difference(cand.index)
        only_cand = cand.index.difference(base.index)
        if len(only_base) or len(only_cand):
            raise DataValidationError(
                f"cannot pair {candidate!r} with {baseline!r}: {len(only_base)} units only in the "
                f"baseline, {len(only_cand)} only in the candidate")
        cand = cand.loc[base.index]
    return base, cand


def compare_models(
    per_unit: dict[str, pd.DataFrame],
    *,
    baseline: str,
    candidates: list[str],
    metrics: list[str],
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> list[MetricComparison]:
    """Paired comparison of each candidate with the baseline on every metric.

    ``per_unit[model]`` is a DataFrame indexed by unit id with one column per metric.
    All metrics of a candidate share one bootstrap resample of the units.
    """
    rows: list[MetricComparison] = []
    for c_index, candidate in enumerate(candidates):
        base, cand = paired_frame(per_unit, baseline, candidate, metrics)
        deltas = cand.to_numpy() - base.to_numpy()
        inferences = infer_paired_deltas(deltas, method=method, confidence=confidence,
                                         n_resamples=n_resamples, seed=seed + c_index)
        for j, metric in enumerate(metrics):
            b_mean = float(base[metric].mean())
            inf = inferences[j]
            rows.append(MetricComparison(
                metric=metric, baseline=baseline, candidate=candidate,
                baseline_value=b_mean, candidate_value=float(cand[metric].mean()),
                delta=inf.estimate,
                relative_delta=inf.estimate / b_mean if b_mean != 0 else None,
                ci_low=inf.ci_low, ci_high=inf.ci_high, n_units=inf.n_units,
                mde=minimum_detectable_effect(inf.std_error), method=method, inference=inf,
            ))
    return rows
