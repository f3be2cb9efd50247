"""Intervals for stage attributions: one paired bootstrap of the queries for every term.

Each term (a stage's Shapley value, a pair's interaction, the total change, the change
of retrieval- and ranking-limited loss) is the mean of a per-query column, a fixed
linear combination of the hybrids' per-query values. All terms of all metrics go
through ONE call of :func:`harness.metrics.stats.infer_paired_means`, as paired deltas
``(baseline + term) - baseline``: one set of resample weights for every term, so the
resampled Shapley values of a resample sum exactly to its resampled total change, and
each term gets a relative delta (term / baseline mean) as the paired comparison does.
The terms come back as :class:`~harness.inference.paired.MetricComparison` rows named by
their labels (``shapley/ranking/ndcg@10``), so the gate decides a criterion on an
attribution exactly as on a metric.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import pandas as pd

from harness.adapters.pipeline import Pipeline
from harness.errors import ConfigError
from harness.evaluate.attribution import CEILING_COLUMNS, HybridValues, differing_stages, evaluate_hybrids
from harness.inference.paired import MDE_ALPHA, MDE_POWER, MetricComparison
from harness.metrics._names import value_range
from harness.metrics.attribution import (DEFAULT_PERMUTATIONS, MAX_EXACT_PLAYERS, AttributionPlan, AttributionTerm,
                                         attribute, attribution_plan)
from harness.metrics.stats import infer_paired_means, minimum_detectable_effect


@dataclass
class TermColumns:
    """Per-query columns of every term, and each term's metric's baseline column."""

    terms: list[AttributionTerm] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)
    baseline: list[np.ndarray] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, term: AttributionTerm, column: np.ndarray, baseline: np.ndarray) -> None:
        self.terms.append(term)
        self.values.append(column)
        self.baseline.append(baseline)

    def matrix(self) -> np.ndarray:
        return np.column_stack(self.values)


def term_columns(hv: HybridValues, plan: AttributionPlan, players: list[str]) -> TermColumns:
    """Every term of every metric as a per-query column (see the module docstring)."""
    if not np.array_equal(hv.masks, plan.masks):
        raise ConfigError("attribution: the hybrids evaluated are not the plan's")
    base_col = int(np.nonzero(plan.masks == 0)[0][0])
    cand_col = int(np.nonzero(plan.masks == (1 << plan.n_players) - 1)[0][0])
    out = TermColumns()
    for metric, values in hv.values.items():
        base = values[:, base_col]
        terms = attribute(values, plan)
        out.add(AttributionTerm("total", (), metric), terms.total, base)
        for p, name in enumerate(players):
            out.add(AttributionTerm("shapley", (name,), metric), terms.shapley[:, p], base)
        for col, (i, j) in enumerate(plan.pairs):
            column = terms.interactions[:, col]
            if np.isnan(column).any():  # sampled orders never put the pair side by side
                out.notes.append(f"attribution: no sampled stage order puts {players[i]!r} next to "
                                 f"{players[j]!r}; their interaction on {metric} is not estimated "
                                 "(raise attribution.n_permutations)")
                continue
            out.add(AttributionTerm("interaction", (players[i], players[j]), metric), column, base)
        if hv.ceiling is not None:
            c = hv.ceiling[metric]
            ideal_b, oracle_b, ideal_c, oracle_c = (c[:, CEILING_COLUMNS.index(n)] for n in CEILING_COLUMNS)
            # loss left by the candidates (ideal - oracle) and by the later stages (oracle - actual)
            out.add(AttributionTerm("retrieval_limited", (), metric), (ideal_c - oracle_c) - (ideal_b - oracle_b), base)
            out.add(AttributionTerm("ranking_limited", (), metric),
                    (oracle_c - values[:, cand_col]) - (oracle_b - base), base)
    return out


def infer_terms(columns: TermColumns, *, baseline: str, candidate: str, method: str = "bootstrap",
                confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0) -> list[MetricComparison]:
    """Paired-bootstrap inference of every term over one shared resample of the queries.

    ``method`` is ``"bootstrap"`` (percentile) or ``"bca"``. A Shapley value, total or loss
    change of a metric with range [lo, hi] has its interval kept within [lo - hi, hi - lo].
    """
    if method not in ("bootstrap", "bca"):
        raise ConfigError(f"attribution.method: must be 'bootstrap' or 'bca' (one resample for every "
                          f"term), got {method!r}")
    terms = columns.matrix()
    base = np.column_stack(columns.baseline)
    bounds = [None if t.kind == "interaction" else value_range(t.metric) for t in columns.terms]
    absolute, relative = infer_paired_means(base + terms, base, method=method, confidence=confidence,
                                            n_resamples=n_resamples, seed=seed, weights="auto", bounds=bounds)
    rows = []
    for j, term in enumerate(columns.terms):
        inf, rel = absolute[j], relative[j]
        b_mean = float(base[:, j].mean())
        estimate = float(terms[:, j].mean())  # the exact mean (not (b + t) - b in floating point)
        rows.append(MetricComparison(
            metric=term.label, baseline=baseline, candidate=candidate, baseline_value=b_mean,
            candidate_value=b_mean + estimate, delta=estimate,
            relative_delta=None if rel is None else rel.estimate, ci_low=inf.ci_low, ci_high=inf.ci_high,
            relative_ci_low=None if rel is None else rel.ci_low, relative_ci_high=None if rel is None else rel.ci_high,
            p_two_sided=inf.p_two_sided(0.0), std_error=inf.std_error, n_units=inf.n_units,
            mde=minimum_detectable_effect(inf.std_error, alpha=MDE_ALPHA, power=MDE_POWER),
            relative_mde=None if rel is None else minimum_detectable_effect(rel.std_error, alpha=MDE_ALPHA,
                                                                            power=MDE_POWER),
            method=inf.method, confidence=confidence, kind="attribution", inference=inf, relative_inference=rel))
    return rows


@dataclass
class PipelineAttribution:
    """Everything :func:`attribute_pipelines` found: the differing stages (``players``), the
    plan, every hybrid's per-query values, every term's per-query column, and one
    comparison row per term (``rows``, keyed by label in ``by_label``)."""

    players: list[str]
    plan: AttributionPlan
    hybrids: HybridValues
    columns: TermColumns
    rows: list[MetricComparison]

    @property
    def by_label(self) -> dict[str, MetricComparison]:
        return {r.metric: r for r in self.rows}


def attribute_pipelines(baseline: Pipeline, candidate: Pipeline, qrels: pd.DataFrame, query_ids: np.ndarray,
                        metrics: list[str], *, method: str = "bootstrap", confidence: float = 0.95,
                        n_resamples: int = 2000, seed: int = 0, max_exact: int = MAX_EXACT_PLAYERS,
                        n_permutations: int = DEFAULT_PERMUTATIONS, ceiling: bool = True, batch_size: int = 4096,
                        options: dict[str, object] | None = None, names: tuple[str, str] = ("baseline", "candidate"),
                        progress: bool = False) -> PipelineAttribution:
    """Which stage moved each metric from ``baseline`` to ``candidate`` (fitted pipelines
    with the same stage names; a stage both share as one object is not attributed).

    Every hybrid is run on ``query_ids`` (stage outputs reused) and scored against
    ``qrels`` (:func:`harness.evaluate.attribution.evaluate_hybrids`); the Shapley values
    (summing exactly to the total change), pairwise interactions and ceiling terms of each
    metric get paired-bootstrap intervals from one shared resample (:func:`infer_terms`).
    ``seed`` seeds the bootstrap and, above ``max_exact`` differing stages, the
    ``n_permutations`` sampled stage orders.
    """
    players = differing_stages(baseline, candidate)
    if not players:
        raise ConfigError("attribution: the two pipelines share every stage; nothing to attribute")
    plan = attribution_plan(len(players), max_exact=max_exact, n_permutations=n_permutations, seed=seed)
    hv = evaluate_hybrids(baseline, candidate, qrels, query_ids, metrics, plan.masks, options=options,
                          batch_size=batch_size, ceiling=ceiling, progress=progress)
    columns = term_columns(hv, plan, players)
    rows = infer_terms(columns, baseline=names[0], candidate=names[1], method=method, confidence=confidence,
                       n_resamples=n_resamples, seed=seed)
    return PipelineAttribution(players, plan, hv, columns, rows)
