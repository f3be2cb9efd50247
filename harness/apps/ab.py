"""``harness ab DATA --config AB.yaml``: experiment data -> sufficient statistics -> SRM
check -> per-metric effects (Welch / delta method / CUPED / confidence sequences) -> gate
-> results folder (on disk first) -> MLflow. And ``harness ab plan``: sample size / MDE.

Exit codes: 0 PASS (or no gate), 1 FAIL or INCONCLUSIVE (0 for INCONCLUSIVE with
``--inconclusive pass``), 2 bad config or data, 3 other errors, 4 INVALID (sample ratio
mismatch: whatever the metrics say, the experiment cannot be read).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.datasets.experiment import file_fingerprint, reduce_units
from harness.datasets.tables import read_table
from harness.errors import DataValidationError
from harness.inference.ab import INVALID, ABOutcome, analyze_experiment, metric_columns
from harness.inference.gate import comparison_rows
from harness.metrics.ab import (VariantMoments, add_moments, moments_from_table, moments_table,
                                segmented_moments_from_table)
from harness.results.folder import PER_UNIT_COLUMNS, EvalResult, new_run_id, write_results
from harness.results.html import write_report
from harness.results.report import junit_xml, markdown_summary
from harness.spec.ab import ABConfig

# exit code of an INVALID experiment (sample ratio mismatch)
EXIT_INVALID = 4
STATISTICS_FILE = "statistics.csv"


@dataclass
class ABRunOutcome:
    result: EvalResult
    analysis: ABOutcome
    results_dir: Path
    exit_code: int


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ExperimentStatistics:
    """The variants' sufficient statistics (control first), per segment when segmented,
    a description of the design, and warnings."""

    moments: list[VariantMoments]
    segments: dict[str, list[VariantMoments]] | None
    design: dict[str, Any]
    warnings: list[str]
    windows: dict[str, list[VariantMoments]] | None = None

    @property
    def clustered(self) -> bool:
        return self.design.get("variance") == "cluster-robust"


def _from_statistics(config: ABConfig, data: str | Path) -> ExperimentStatistics:
    names, cols = config.variants.names, config.columns
    table = read_table(data, id_columns=[cols.variant, *([cols.segment] if cols.segment else [])])
    segments = None
    if cols.segment:
        segments = segmented_moments_from_table(table, segment=cols.segment, variant=cols.variant, source=str(data))
        found = {m.variant for part in segments.values() for m in part}
    else:
        found = {m.variant for m in moments_from_table(table, variant=cols.variant, source=str(data))}
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
        have = {m.variant: m for m in moments_from_table(table, variant=cols.variant, source=str(data))}
        moments = [have[n] for n in names]
    design = {"input": "statistics", "unit": "unit", "n_units": sum(m.n for m in moments)}
    return ExperimentStatistics(moments, segments, design, [])


def load_statistics(config: ABConfig, data: str | Path) -> ExperimentStatistics:
    """Read per-unit data or a statistics table into sufficient statistics: per cluster
    (cluster-robust) when ``columns.cluster`` is set and ``analysis.variance`` is auto."""
    if config.input == "statistics":
        return _from_statistics(config, data)
    names, cols = config.variants.names, config.columns
    binary = [s.proportion for s in config.metrics.values() if s.proportion]
    robust = config.analysis.variance == "auto"
    cluster = cols.cluster or (cols.unit if cols.window else None)  # a holdout's units repeat over windows
    red = reduce_units(data, variant=cols.variant, columns=metric_columns(config), variants=names, unit=cols.unit,
                       cluster=cluster, segment=cols.segment, window=cols.window, binary=binary, cluster_robust=robust)
    design: dict[str, Any] = {"input": "units", "unit": cols.unit or "row", "n_units": red.n_units}
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


def _arm_rows(outcome: ABOutcome, confidence: float) -> list[dict[str, Any]]:
    """``results.json["metrics"]``: each variant's unadjusted metric with its interval."""
    from scipy import special

    q = float(special.ndtri(0.5 + confidence / 2))
    rows, seen = [], set()
    for e in outcome.effects:
        for arm in (e.control, e.treatment):
            if (arm.variant, e.metric) in seen:
                continue
            seen.add((arm.variant, e.metric))
            half = q * float(np.sqrt(arm.raw_variance))
            rows.append({"model": arm.variant, "metric": e.metric, "value": arm.raw_value,
                         "ci_low": arm.raw_value - half, "ci_high": arm.raw_value + half, "n_units": arm.n,
                         "family": "ab"})
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in rows))}
    return sorted(rows, key=lambda r: order[r["model"]])


def _effects_figure(outcome: ABOutcome) -> Any:
    """Relative lift of every treatment on every metric with its interval (a forest plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [(f"{e.treatment.variant}: {e.metric}", e.relative) for e in outcome.effects if e.relative is not None]
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    for y, (_, inf) in enumerate(rows):
        lo, hi = (np.clip([inf.ci_low, inf.ci_high], -1e3, 1e3) * 100)
        ax.plot([lo, hi], [y, y], color="tab:blue", lw=2)
        ax.plot(inf.estimate * 100, y, "o", color="tab:blue")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.invert_yaxis()
    ax.set_xlabel(f"relative lift vs {outcome.effects[0].control.variant} (%)")
    ax.set_title(f"A/B relative lifts with their intervals, verdict {outcome.verdict.decision}")
    fig.tight_layout()
    return fig


def _curve_figure(outcome: ABOutcome, window: str) -> Any:
    """A holdout's effect curve: each metric's relative lift per window with its band
    (Bonferroni over the windows: all windows covered together), one panel a metric."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(r["metric"] for r in outcome.windows))
    fig, axes = plt.subplots(len(metrics), 1, figsize=(7, 2.6 * len(metrics)), squeeze=False, sharex=True)
    for ax, metric in zip(axes[:, 0], metrics):
        for treatment in dict.fromkeys(r["treatment"] for r in outcome.windows):
            rows = [r for r in outcome.windows if r["metric"] == metric and r["treatment"] == treatment
                    and r["relative_delta"] is not None]
            x = np.arange(len(rows))
            y = np.array([r["relative_delta"] for r in rows]) * 100
            lo = np.clip([r["relative_ci_low"] for r in rows], -10, 10) * 100
            hi = np.clip([r["relative_ci_high"] for r in rows], -10, 10) * 100
            ax.plot(x, y, "o-", label=treatment)
            ax.fill_between(x, lo, hi, alpha=0.2)
            ax.set_xticks(x, [str(r["window"]) for r in rows])
        ax.axhline(0, color="grey", lw=1)
        ax.set_ylabel(f"{metric}\nlift (%)")
        ax.legend(loc="best", fontsize=8)
    level = outcome.windows[0]["confidence"]
    axes[0, 0].set_title(f"effect over time vs {outcome.effects[0].control.variant} "
                         f"({level:.2%} intervals: Bonferroni over {len(set(r['window'] for r in outcome.windows))} windows)")
    axes[-1, 0].set_xlabel(window)
    fig.tight_layout()
    return fig


def exit_code_for_ab(decision: str, *, inconclusive: str = "fail", require_gate: bool = False) -> int:
    """``harness run``'s exit codes, plus 4 for INVALID (never passes, whatever the policy)."""
    from harness.apps.run import exit_code_for
    from harness.inference.gate import Verdict

    if decision == INVALID:
        return EXIT_INVALID
    return exit_code_for(Verdict(decision), inconclusive=inconclusive, require_gate=require_gate)


def run_ab(config: ABConfig, data: str | Path, *, output: str | Path | None = None, inconclusive: str = "fail",
           require_gate: bool = False) -> ABRunOutcome:
    """Analyse the experiment, write the results folder, then log to MLflow."""
    from harness.apps.run import config_hash, resolve_tracking_uri, track
    from harness.apps.validate import check_output

    from harness.apps.history import offline_record

    out_root = check_output(output or config.output)
    launch = offline_record(config)  # read before the data: a wrong path fails fast
    data_stats = load_statistics(config, data)
    moments, design = data_stats.moments, data_stats.design
    outcome = analyze_experiment(config, moments, warnings=data_stats.warnings, clustered=data_stats.clustered,
                                 segments=data_stats.segments, windows=data_stats.windows)
    outcome.design = design
    warnings = outcome.warnings
    for w in warnings:
        _say(f"WARNING: {w}")
    verdict = outcome.verdict
    rows = comparison_rows(outcome.comparisons, verdict)
    for row, e in zip(rows, outcome.effects):
        row.update(variance_reduction=e.variance_reduction, cuped_theta=e.theta.tolist())
    result = EvalResult(
        run_id=new_run_id(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),  # type: ignore[arg-type]  # any pydantic model
        dataset={"name": Path(data).name, "fingerprint": file_fingerprint(data), **design},
        metrics=_arm_rows(outcome, config.analysis.confidence),
        per_unit=pd.DataFrame(columns=PER_UNIT_COLUMNS),
        comparison=rows,
        verdict={**verdict.to_dict(), "warnings": [*verdict.warnings, *warnings]},
        extra={"families": {"ab": {"unit": "user", "compared": list(dict.fromkeys(r["metric"] for r in rows)),
                                   "skipped_models": [], "caps": {}}},
               "ab": {"srm": asdict(outcome.srm), "design": design, "segments": outcome.segments,
                      "heterogeneity": outcome.heterogeneity, "windows": outcome.windows,
                      "window_heterogeneity": outcome.window_heterogeneity, "launch": launch,
                      "sequential": config.analysis.sequential.model_dump(),
                      "statistics": STATISTICS_FILE}},
    )
    files = {"summary.md": markdown_summary(result), "junit.xml": junit_xml(result),
             STATISTICS_FILE: statistics_table(data_stats, config.columns.segment).to_csv(index=False)}
    figures = {"ab_effects": _effects_figure(outcome)}
    if outcome.windows:
        figures["ab_effect_over_time"] = _curve_figure(outcome, config.columns.window or "window")
    try:
        results_dir = write_results(result, out_root, files, figures=figures, finalize=write_report)
    finally:
        import matplotlib.pyplot as plt

        for fig in figures.values():
            plt.close(fig)
    _say(f"results written to {results_dir}")
    if config.tracking.enabled:
        result.tracking = track(results_dir, result, resolve_tracking_uri(config.tracking.uri))
    return ABRunOutcome(result, outcome, results_dir, exit_code_for_ab(verdict.decision, inconclusive=inconclusive,
                                                                       require_gate=require_gate))


def srm_line(outcome: ABOutcome) -> str:
    """The console's lines on the sample ratio and, when segmented, on heterogeneity."""
    s = outcome.srm
    lines = ["SRM: " + ("INVALID, " if s.invalid else "ok, ") + s.message.removeprefix("sample ratio mismatch: ")]
    for h in outcome.heterogeneity:
        lines.append(f"heterogeneity: {h['treatment']} {h['metric']} across {h['segments']} segments: "
                     f"Q={h['q']:.3g} on {h['df']} df, p={h['p_value']:.3g}, I2={h['i2']:.0%}")
    for h in outcome.window_heterogeneity:
        lines.append(f"effect over time: {h['treatment']} {h['metric']} across {h['windows']} windows: "
                     f"Q={h['q']:.3g} on {h['df']} df, p={h['p_value']:.3g} (H0: constant effect)")
    return "\n".join(lines)
