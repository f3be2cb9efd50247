"""``harness ab DATA --config AB.yaml``: the ``ab`` evaluation family on the experiment's
data (sufficient statistics -> SRM check -> per-metric effects), through the engine's
generic path: comparison rows -> gate -> INVALID on a sample ratio mismatch -> results
folder (on disk first) -> MLflow. ``harness ab plan`` (sample size / MDE) is in the CLI.

Exit codes: 0 PASS (or no gate), 1 FAIL or INCONCLUSIVE (0 for INCONCLUSIVE with
``--inconclusive pass``), 2 bad config or data, 3 other errors, 4 INVALID (sample ratio
mismatch: whatever the metrics say, the experiment cannot be read).
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.errors import say
from harness.evaluate import Evaluation, FamilyResult
from harness.inference.gate import Verdict, comparison_rows, decide, invalidate
from harness.apps.run import RunOutcome
from harness.inference.paired import MetricComparison, compare_family
from harness.metrics.ab import SampleRatioMismatch
from harness.results import assemble
from harness.results.folder import EvalResult, new_run_id
from harness.results.report import junit_xml, markdown_summary
from harness.spec.ab import ABConfig


def analyze(config: ABConfig, data: str | Path) -> tuple[dict[str, FamilyResult], list[MetricComparison], Verdict]:
    """The experiment through the engine: the ``ab`` family's result, its comparison rows
    (control as the baseline, every treatment a candidate) and the gate's verdict, INVALID
    when the family found a sample ratio mismatch. With ``engine: {kind: spark}`` the
    per-unit rows are read and reduced to moments by Spark; the analysis is the same."""
    from harness.apps.run import engine_backend

    evaluation = Evaluation({"ab": config.family_spec(data)}, None, seed=0, confidence=config.analysis.confidence,
                            backend=engine_backend(config.engine))
    results = evaluation.finish()
    comparisons = compare_family(results["ab"], baseline=config.variants.control,
                                 candidates=list(config.variants.treatments))
    verdict = decide(list(config.gate), comparisons, correction=config.analysis.correction)
    return results, comparisons, invalidate(verdict, assemble.invalid(results))


def run_ab(config: ABConfig, data: str | Path, *, output: str | Path | None = None, inconclusive: str = "fail",
           require_gate: bool = False, plots: bool = True) -> RunOutcome:
    """Analyse the experiment, write the results folder (its figures unless ``plots`` is
    off), then log to MLflow."""
    from harness.apps.history import offline_record
    from harness.apps.run import config_hash, exit_code_for, resolve_tracking_uri, save_and_track
    from harness.apps.validate import check_output

    out_root = check_output(output or config.output)
    launch = offline_record(config)  # read before the data: a wrong path fails fast
    results, comparisons, verdict = analyze(config, data)
    notices = [n for r in results.values() for n in r.notices]
    for w in notices:
        say(f"WARNING: {w}")
    sections = assemble.family_sections(results)
    sections["ab"]["launch"] = launch
    design = sections["ab"]["design"]
    result = EvalResult(
        run_id=new_run_id(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),  # type: ignore[arg-type]  # any pydantic model
        dataset={"name": Path(data).name, **design},  # design: the data's fingerprint, units, clusters
        metrics=assemble.metric_rows(results),
        per_unit=assemble.per_unit_table(results),
        comparison=comparison_rows(comparisons, verdict),
        verdict={**verdict.to_dict(), "warnings": [*verdict.warnings, *notices]},
        extra=sections,
    )
    files = {"summary.md": markdown_summary(result), "junit.xml": junit_xml(result), **assemble.files(results)}
    results_dir = save_and_track(result, out_root, files, figures=assemble.figures(results), plots=plots,
                                 tracking_uri=resolve_tracking_uri(config.tracking.uri)
                                 if config.tracking.enabled else None)
    return RunOutcome(result, results_dir, exit_code_for(verdict, inconclusive=inconclusive,
                                                         require_gate=require_gate))


def srm_line(result: EvalResult) -> str:
    """The console's lines on the sample ratio and, when segmented, on heterogeneity."""
    ab: dict[str, Any] = result.extra["ab"]
    s = SampleRatioMismatch(**ab["srm"])
    lines = ["SRM: " + ("INVALID, " if s.invalid else "ok, ") + s.message.removeprefix("sample ratio mismatch: ")]
    for h in ab["heterogeneity"]:
        lines.append(f"heterogeneity: {h['treatment']} {h['metric']} across {h['segments']} segments: "
                     f"Q={h['q']:.3g} on {h['df']} df, p={h['p_value']:.3g}, I2={h['i2']:.0%}")
    for h in ab["window_heterogeneity"]:
        lines.append(f"effect over time: {h['treatment']} {h['metric']} across {h['windows']} windows: "
                     f"Q={h['q']:.3g} on {h['df']} df, p={h['p_value']:.3g} (H0: constant effect)")
    for r in ab.get("launches", []):
        lines.append(f"launch {r['launch']} (from {r['start']}{', ' + r['surface'] if r['surface'] else ''}): "
                     f"{r['treatment']} {r['metric']} own effect {r['delta']:+.4g} [{r['ci_low']:+.4g}, "
                     f"{r['ci_high']:+.4g}], all launches so far {r['cumulative_delta']:+.4g} "
                     f"[{r['cumulative_ci_low']:+.4g}, {r['cumulative_ci_high']:+.4g}] ({r['confidence']:.2%})")
    return "\n".join(lines)
