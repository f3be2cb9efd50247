"""Report sections of the built-in families: each is the generic section plus what the
family's own ``results.json`` block holds (curves, reliability and segments, weights)."""

from __future__ import annotations

from typing import Any

from harness.results.sections import (Cell, ReportData, Section, Table, generic_section, interval, number,
                                      register_section)

# off-policy weight diagnostics shown per estimate: results.json key -> column heading
WEIGHT_COLUMNS = {"ess": "ESS", "ess_ratio": "ESS / n", "max_weight": "max weight", "p999_weight": "p99.9 weight",
                  "top1pct_share": "top-1% share", "mean_weight": "mean weight", "clipped_fraction": "clipped"}
SEGMENT_COLUMNS = ("n", "base_rate", "mean_predicted", "ece", "oe_ratio", "brier", "log_loss")


def _titled(report: ReportData, key: str, title: str) -> tuple[Section, dict[str, Any]]:
    """The family's generic section under its title, and its own ``results.json`` block."""
    section = generic_section(report, key)
    section.title = title
    return section, report.data.get(key) or {}


def _with_figures(section: Section, report: ReportData, *named: tuple[str, str]) -> Section:
    section.figures += [f for f in (report.figure(name, caption) for name, caption in named) if f is not None]
    return section


@register_section("ranking")
def ranking_section(report: ReportData, key: str) -> Section:
    section, block = _titled(report, key, "Ranking")
    counts = block.get("counts") or {}
    if counts:
        section.tables.append(Table("Queries per model", ["model", "judged", "evaluated", "ranked nothing"],
                                    [[Cell(m), number(c.get("judged"), "d"), number(c.get("evaluated"), "d"),
                                      number(c.get("missing_from_run"), "d")] for m, c in counts.items()]))
    return _with_figures(section, report, ("ranking_curves", "Metric at cut-off k, mean over queries, with 95% "
                                                             "intervals (shaded)"))


@register_section("beyond_accuracy")
def beyond_accuracy_section(report: ReportData, key: str) -> Section:
    section, _ = _titled(report, key, "Beyond accuracy")
    section.paragraphs.append("Catalogue-level metrics (coverage, Gini, personalisation) have no per-query "
                              "interval; per-user ones (novelty, popularity, diversity) are compared per query.")
    return section


def _segment_table(model: str, by_segment: dict[str, list[Any]]) -> Table:
    segments = by_segment.get("segment", [])
    rows = [[Cell(str(s))] + [number(by_segment[c][i], "d" if c == "n" else ".4f") for c in SEGMENT_COLUMNS
                              if c in by_segment] for i, s in enumerate(segments)]
    return Table(f"{model}: calibration by segment", ["segment"] + [c for c in SEGMENT_COLUMNS if c in by_segment],
                 rows)


@register_section("calibration")
def calibration_section(report: ReportData, key: str) -> Section:
    section, block = _titled(report, key, "Calibration")
    if block.get("n_rows"):
        section.paragraphs.append(f"{block['n_rows']:,} labelled rows, base rate {block.get('base_rate', 0):.4f}.")
    models = block.get("models") or {}
    if models:
        names = ("calibration_slope", "calibration_intercept", "ece_debiased", "mce", "normalized_entropy", "oe_ratio")
        section.tables.append(Table(
            "Calibration details", ["model", *names],
            [[Cell(m)] + [number((s.get("metrics") or {}).get(n)) for n in names] for m, s in models.items()]))
    section.tables += [_segment_table(m, s["by_segment"]) for m, s in models.items() if s.get("by_segment")]
    return _with_figures(section, report,
                         ("reliability", "Reliability diagram: observed rate against predicted probability, "
                                         "95% Wilson intervals; rows per bin below"),
                         ("calibration_by_segment", "Calibration by segment"))


@register_section("off_policy")
def off_policy_section(report: ReportData, key: str) -> Section:
    section, block = _titled(report, key, "Off-policy estimates")
    if block.get("n_rows"):
        section.paragraphs.append(f"Each model as a policy, estimated on {block['n_rows']:,} logged rows. Large "
                                  "weights or a small effective sample size (ESS) mean the logs say little "
                                  "about the policy.")
    true_values = block.get("true_values") or {}
    rows = []
    for model, estimates in (block.get("estimates") or {}).items():
        for e in estimates:
            rows.append([Cell(model), Cell(e["estimator"]), number(e["value"]), interval(e["ci_low"], e["ci_high"])]
                        + [number(e.get(k), ".3g") for k in WEIGHT_COLUMNS]
                        + [Cell("low" if e.get("low_overlap") else "ok", None,
                                "bad" if e.get("low_overlap") else "good")]
                        + ([number(true_values.get(model))] if true_values else []))
    if rows:
        section.tables.append(Table("Estimates and weight diagnostics",
                                    ["model", "estimator", "value", "interval", *WEIGHT_COLUMNS.values(), "overlap"]
                                    + (["true value"] if true_values else []), rows))
    return section


@register_section("attribution")
def attribution_section(report: ReportData, key: str) -> Section:
    """Which stage moved each metric: Shapley values and interactions with their paired
    intervals (the comparison table), the efficiency check and the ceiling analysis."""
    section, block = _titled(report, key, "Stage attribution")
    differing = ", ".join(block.get("differing_stages") or [])
    section.paragraphs.append(
        f"{block.get('candidate')} against {block.get('baseline')}, stage by stage (differing: {differing}). "
        "Each stage's Shapley value is its average effect over every order of swapping the stages in; the "
        "values sum to the total change. Intervals share one set of paired resamples.")
    rows = []
    for metric, entry in (block.get("metrics") or {}).items():
        ceiling = entry.get("ceiling") or {}
        rows.append([Cell(metric), number(entry.get("baseline")), number(entry.get("candidate")),
                     number(entry.get("total"), "+.4f"), number(entry.get("efficiency_residual"), ".1e")]
                    + [number((ceiling.get(side) or {}).get(part), "+.4f" if part != "ideal" else ".4f")
                       for side in ("baseline", "candidate") for part in ("retrieval_limited", "ranking_limited")])
    if rows:
        section.tables.insert(0, Table("Totals, efficiency check and ceiling (loss below the ideal list)",
                                       ["metric", "baseline", "candidate", "total change", "Shapley sum - total",
                                        "baseline retrieval-limited", "baseline ranking-limited",
                                        "candidate retrieval-limited", "candidate ranking-limited"], rows))
    section.notes += list(block.get("notes") or [])
    figures = [(name, f"Waterfall of {name.removeprefix('attribution_').replace('_at_', '@')}: stage "
                      "contributions with 95% intervals") for name in sorted(report.plots)
               if name.startswith("attribution_")]
    return _with_figures(section, report, *figures)


@register_section("ab")
def ab_section(report: ReportData, key: str) -> Section:
    """An A/B test: each variant's metrics and the treatment effects (the generic tables),
    the sample ratio check that can make the whole result INVALID, heterogeneity across
    segments, and the effect plots."""
    section, block = _titled(report, key, "A/B test")
    section.paragraphs[0] = "Units: users (the unit of analysis of the experiment)."
    srm = block.get("srm") or {}
    observed, expected = srm.get("observed") or {}, srm.get("expected") or {}
    if observed:
        total = sum(observed.values())
        section.tables.append(Table(
            f"Sample ratio: chi2 = {srm.get('statistic', 0):.4g} on {srm.get('df')} df, p = {srm.get('p_value', 1):.3g} "
            f"({'MISMATCH: the result is INVALID' if srm.get('invalid') else 'ok'}; threshold {srm.get('threshold')})",
            ["variant", "units", "share", "planned share"],
            [[Cell(v), number(n, "d"), number(n / total, ".3%"), number(expected.get(v, 0) / total, ".3%")]
             for v, n in observed.items()]))
    if block.get("heterogeneity"):
        section.tables.append(Table("Heterogeneity across segments (Cochran's Q)",
                                    ["treatment", "metric", "segments", "Q", "p", "I²"],
                                    [[Cell(h["treatment"]), Cell(h["metric"]), number(h["segments"], "d"),
                                      number(h["q"], ".3g"), number(h["p_value"], ".3g"), number(h["i2"], ".0%")]
                                     for h in block["heterogeneity"]]))
    if block.get("launches"):
        section.tables.append(Table(
            "Launches sharing the holdout: each launch's own effect and every launch so far",
            ["launch", "from", "surface", "treatment", "metric", "own effect", "interval", "all so far", "interval"],
            [[Cell(r["launch"]), Cell(str(r["start"])), Cell(r["surface"] or "all"), Cell(r["treatment"]),
              Cell(r["metric"]), number(r["delta"], "+.4g"), interval(r["ci_low"], r["ci_high"]),
              number(r["cumulative_delta"], "+.4g"), interval(r["cumulative_ci_low"], r["cumulative_ci_high"])]
             for r in block["launches"]]))
    return _with_figures(section, report, ("ab_effects", "Treatment effects with their intervals"),
                         ("ab_effect_over_time", "Effect per time window (holdout)"))


@register_section("decomposition")
def decomposition_section(report: ReportData, key: str) -> Section:
    """Which segment moved each metric: per segment its shares, its change with a
    simultaneous interval, and its within and mix parts, which add up to the total."""
    section, block = _titled(report, key, "Decomposition by segment")
    level = block.get("confidence", 0.95)
    section.paragraphs.append(
        f"{block.get('before')} -> {block.get('after')}, by {block.get('by')} ({block.get('source')}). Each "
        "metric's change is the within-segment effect (segments got better or worse) plus the mix shift "
        f"(traffic moved between segments of different levels). Intervals: {level:.0%}, holding for all "
        "segments at once (Bonferroni).")
    for metric, entry in (block.get("metrics") or {}).items():
        rows = [[Cell(s["segment"]), number(s["n_before"], "d"), number(s["n_after"], "d"),
                 number(s["share_before"], ".1%"), number(s["share_after"], ".1%"), number(s["mean_before"]),
                 number(s["mean_after"]), number(s["delta"], "+.4f"), interval(s["ci_low"], s["ci_high"], "+.4f"),
                 number(s["within"], "+.4f"), number(s["mix"], "+.4f")] for s in entry["segments"]]
        rows.append([Cell("total"), Cell(""), Cell(""), Cell(""), Cell(""), number(entry["before"]),
                     number(entry["after"]), number(entry["total"], "+.4f"), Cell(""), number(entry["within"], "+.4f"),
                     number(entry["mix"], "+.4f")])
        section.tables.append(Table(f"{metric}: total {entry['total']:+.4f} = within {entry['within']:+.4f} + "
                                    f"mix {entry['mix']:+.4f}",
                                    ["segment", "units before", "units after", "share before", "share after",
                                     "mean before", "mean after", "delta", "interval", "within", "mix"], rows))
    section.notes += list(block.get("notes") or [])
    figures = [(name, f"Waterfall of {name.removeprefix('decomposition_').replace('_at_', '@')}: each segment's "
                      "within effect, then the mix shift") for name in sorted(report.plots)
               if name.startswith("decomposition_")]
    return _with_figures(section, report, *figures)
