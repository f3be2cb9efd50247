"""``results.json["attribution"]``, its per-unit rows, table and waterfall figures.

The section describes itself (a report can render it without knowing the runner): what
a unit is, the two pipelines and which stages differ, every hybrid's mean, every term
with its interval, per metric the efficiency check (Shapley values summing to the
total) and the ceiling analysis, and what stage-output reuse saved.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from harness.errors import ResultsError
from harness.evaluate.attribution import CEILING_COLUMNS, HybridValues, hybrid_name
from harness.inference.paired import MetricComparison
from harness.metrics.attribution import AttributionPlan, parse_term

if TYPE_CHECKING:
    from harness.evaluate.family import FigureDraw

SECTION_VERSION = 1
TERM_FIELDS = ("delta", "ci_low", "ci_high", "relative_delta", "relative_ci_low", "relative_ci_high",
               "p_two_sided", "std_error", "n_units")


def _term_row(comp: MetricComparison) -> dict[str, Any]:
    term = parse_term(comp.metric)
    if term is None:
        raise ResultsError(f"attribution: comparison {comp.metric!r} is not named by an attribution term")
    row = {"label": comp.metric, "kind": term.kind, "stages": list(term.stages), "metric": term.metric}
    row.update({("estimate" if f == "delta" else f): getattr(comp, f) for f in TERM_FIELDS})
    return row


def attribution_section(*, baseline: str, candidate: str, stages: list[str], players: list[str],
                        plan: AttributionPlan, hv: HybridValues, comparisons: list[MetricComparison],
                        method: str, confidence: float, n_resamples: int, seed: int,
                        notes: list[str]) -> dict[str, Any]:
    """The self-describing ``attribution`` section (see the module docstring)."""
    terms = [_term_row(c) for c in comparisons]
    by_label = {t["label"]: t for t in terms}
    base_col = int(np.nonzero(plan.masks == 0)[0][0])
    cand_col = int(np.nonzero(plan.masks == (1 << plan.n_players) - 1)[0][0])
    metrics: dict[str, Any] = {}
    for metric, values in hv.values.items():
        shapley = [by_label[f"shapley/{p}/{metric}"]["estimate"] for p in players]
        total = by_label[f"total/{metric}"]["estimate"]
        entry: dict[str, Any] = {"baseline": float(values[:, base_col].mean()),
                                 "candidate": float(values[:, cand_col].mean()), "total": total,
                                 "sum_of_shapley": float(sum(shapley)),
                                 "efficiency_residual": float(sum(shapley) - total)}
        if hv.ceiling is not None:
            means = dict(zip(CEILING_COLUMNS, hv.ceiling[metric].mean(axis=0).tolist()))
            entry["ceiling"] = {side: {"ideal": means[f"ideal_{side}"], "oracle": means[f"oracle_{side}"],
                                       "actual": entry[side],
                                       "retrieval_limited": means[f"ideal_{side}"] - means[f"oracle_{side}"],
                                       "ranking_limited": means[f"oracle_{side}"] - entry[side]}
                                for side in ("baseline", "candidate")}
        metrics[metric] = entry
    return {
        "version": SECTION_VERSION,
        "unit": "query",
        "baseline": baseline,
        "candidate": candidate,
        "stages": stages,
        "differing_stages": players,
        "shared_stages": [s for s in stages if s not in players],
        "exact": plan.exact,
        "n_permutations": plan.n_permutations,
        "interval": {"method": method, "confidence": confidence, "n_resamples": n_resamples, "seed": seed,
                     "shared_resamples": True},
        "hybrids": [{"mask": int(m), "name": hybrid_name(stages, {p for b, p in enumerate(players) if m >> b & 1}),
                     "candidate_stages": [p for b, p in enumerate(players) if m >> b & 1],
                     "means": {metric: float(v[:, r].mean()) for metric, v in hv.values.items()}}
                    for r, m in enumerate(plan.masks)],
        "terms": terms,
        "metrics": metrics,
        "reuse": hv.cache.to_dict(),
        "notes": notes,
        "per_unit": {"family": "attribution", "model": candidate, "metric": "term label"},
    }


def per_unit_terms(units: np.ndarray, labels: list[str], matrix: np.ndarray) -> pd.DataFrame:
    """Wide per-query table of the terms (index: unit id in the data's own ids)."""
    return pd.DataFrame(matrix, columns=labels, index=pd.Index(units.astype(str), name="unit_id"))


def attribution_table(section: dict[str, Any]) -> str:
    """Plain-text table per metric: baseline, each term with its interval, candidate."""
    level = section["interval"]["confidence"]
    lines = [f"attribution: {section['baseline']} -> {section['candidate']} "
             f"(differing stages: {', '.join(section['differing_stages']) or 'none'}; "
             f"{'exact' if section['exact'] else str(section['n_permutations']) + ' sampled orders'}, "
             f"{level * 100:g}% paired-bootstrap intervals, one resample for all terms)"]
    for metric, entry in section["metrics"].items():
        lines += ["", f"{metric}: baseline {entry['baseline']:.4f} -> candidate {entry['candidate']:.4f}"]
        for t in section["terms"]:
            if t["metric"] != metric:
                continue
            name = "/".join([t["kind"], *t["stages"]])
            lines.append(f"  {name:<40} {t['estimate']:+.4f}  [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]")
        lines.append(f"  sum of Shapley values - total = {entry['efficiency_residual']:+.2e}")
    reuse = section["reuse"]
    lines += ["", f"stage outputs reused: {reuse['stage_calls']} stage runs instead of {reuse['naive_stage_calls']} "
                  f"({reuse['share_saved']:.0%} of stage time saved)"]
    return "\n".join(lines)


def waterfall_figures(section: dict[str, Any]) -> dict[str, FigureDraw]:
    """``attribution_<metric>`` -> waterfall figure (``@`` written ``_at_`` in the file
    name), drawn when saved."""
    from harness.evaluate.plots import plot_attribution_waterfall

    figures: dict[str, FigureDraw] = {}
    for metric, entry in section["metrics"].items():
        terms = [t for t in section["terms"] if t["metric"] == metric]
        steps = [(t["stages"][0], t["estimate"], t["ci_low"], t["ci_high"]) for t in terms if t["kind"] == "shapley"]
        if not steps:
            continue
        notes = [f"interaction {' x '.join(t['stages'])}: {t['estimate']:+.4f} [{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]"
                 " (split equally between the two)" for t in terms if t["kind"] == "interaction"]
        notes += [f"{t['kind'].replace('_', '-')} loss change: {t['estimate']:+.4f} [{t['ci_low']:+.4f}, "
                  f"{t['ci_high']:+.4f}]" for t in terms if t["kind"] in ("retrieval_limited", "ranking_limited")]
        figures[f"attribution_{metric.replace('@', '_at_')}"] = partial(
            plot_attribution_waterfall, metric, (section["baseline"], entry["baseline"]),
            (section["candidate"], entry["candidate"]), steps, notes)
    return figures
