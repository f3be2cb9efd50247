"""``harness run``: the spine, once. Data set -> models -> families -> paired comparison
-> gate -> results folder (on disk first) -> MLflow.

Every stage is generic over evaluation families (``harness.evaluate``): this module
never names one.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from harness.adapters.registry import build_config_model, check_model_kinds
from harness.errors import ConfigError, InterruptedAfterWriting, TrackingError, say
from harness.evaluate import Evaluation, FamilyResult
from harness.evaluate.family import FigureDraw
from harness.evaluate.backend import Backend
from harness.evaluate.data import dataset_summary, load_dataset
from harness.evaluate.sources import SourceCollection
from harness.inference.gate import FAIL, INVALID, NO_GATE, PASS, Verdict, comparison_rows, decide
from harness.inference.gate import invalidate, resample_count
from harness.inference.paired import MetricComparison, compare_family
from harness.results import assemble
from harness.results.folder import EvalResult, new_run_id, update_tracking, write_results
from harness.results.html import write_report
from harness.results.report import junit_xml, markdown_summary
from harness.spec.attribution import is_attribution_criterion
from harness.spec.config import EngineSpec, EvalConfig
from harness.types import Dataset, adapter_call


@dataclass
class RunOutcome:
    result: EvalResult
    results_dir: Path
    exit_code: int


def config_hash(config: EvalConfig) -> str:
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def engine_backend(engine: EngineSpec) -> Backend | None:
    """The backend of a config's ``engine``: None for the local engine, else a Spark session's."""
    if engine.kind == "local":
        return None
    from harness.spark.backend import SparkBackend

    say(f"engine: spark ({engine.master or 'the session default'})")
    return SparkBackend.from_spec(engine)


def evaluate_models(config: EvalConfig, dataset: Dataset | SourceCollection, *, progress: bool,
                    tracking_uri: str | None = None, backend: Backend | None = None,
                    ) -> tuple[dict[str, FamilyResult], dict[str, dict[str, Any]]]:
    """Fit every model and measure it with every configured family (on ``backend``;
    default: the one of ``config.engine``). A collection left to the backend
    (``SourceCollection``) has its models as score-table sources, built from nothing.

    Returns the families' results and what is known about each model besides its
    metrics (timing, pinned version, reused run) for ``results.json["units"]``.
    """
    from harness.tracking import prior_runs

    confidence = config.compare.confidence if config.compare else 0.95
    evaluation = Evaluation(config.evaluate.blocks(), dataset, seed=config.seed, confidence=confidence,
                            progress=progress, backend=backend or engine_backend(config.engine))
    info: dict[str, dict[str, Any]] = {}
    ranking_metrics = config.evaluate.ranking.metrics
    baseline = config.compare.baseline if config.compare else ""
    if baseline.startswith("runs:/"):
        tables, info[baseline] = prior_runs.load_prior_run(baseline, fingerprint=dataset.fingerprint,
                                                           metrics=ranking_metrics, tracking_uri=tracking_uri)
        evaluation.add_stored(baseline, tables)
        say(f"baseline {baseline}: reusing its per-unit values")
    specs, pinned = prior_runs.plan_models(config, tracking_uri)
    settings = prior_runs.eval_settings_hash(config)
    to_fit: dict[str, object] = {}
    for name, spec in specs.items():  # every model is built (files, parameters) before any is fitted
        if name in pinned:
            info[name] = {"model_version_uri": pinned[name], "eval_settings": settings}
            stored = prior_runs.find_stored(pinned[name], fingerprint=dataset.fingerprint, settings=settings,
                                            metrics=ranking_metrics, tracking_uri=tracking_uri)
            if stored is not None:
                info[name]["reused_from"], tables = stored
                evaluation.add_stored(name, tables)
                say(f"{name} ({pinned[name]}): reusing stored per-unit values of {stored[0]}")
                continue
        params = spec.params
        if spec.kind == "mlflow" and tracking_uri and "tracking_uri" not in params:
            params = {**params, "tracking_uri": tracking_uri}  # load from the store the config names
        to_fit[name] = (dataset.runs[name] if isinstance(dataset, SourceCollection)
                        else build_config_model(name, spec.kind, params, dataset, config.seed))
    evaluation.check_gate([c.metric for c in config.gate],
                          {n: m for n, m in to_fit.items() if n in config.gated_models()})
    evaluation.check_stored({n: m for n, m in to_fit.items() if specs[n].kind == "precomputed"})
    try:
        for name, model in to_fit.items():
            started_ms = int(time.time() * 1000)
            if hasattr(model, "fit"):
                if specs[name].kind != "precomputed":  # stored scores: nothing to learn
                    say(f"fitting {name} ({specs[name].kind}) on {len(dataset.train)} interactions")
                with adapter_call(name, "fit"):
                    model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
            evaluation.add_model(name, model)
            info.setdefault(name, {}).update(started_ms=started_ms, ended_ms=int(time.time() * 1000))
        results = evaluation.finish()
    except BaseException:  # a later model failed: what the backend keeps of the earlier ones is freed
        evaluation.release()
        raise
    for model, details in assemble.model_info(results).items():
        info.setdefault(model, {}).update(details)
    return results, info


def compare_all(config: EvalConfig, results: dict[str, FamilyResult]) -> list[MetricComparison]:
    """Every family's paired comparisons of the candidates with the baseline."""
    if config.compare is None:
        return []
    c = config.compare
    n_resamples = c.n_resamples or resample_count(config.gate, len(c.candidates), c.correction)
    return [comp for result in results.values()
            for comp in compare_family(result, baseline=c.baseline, candidates=list(c.candidates), method=c.method,
                                       confidence=c.confidence, n_resamples=n_resamples, seed=config.seed)]


# exit code of an INVALID evaluation (e.g. an A/B test's sample ratio mismatch)
EXIT_INVALID = 4


def exit_code_for(verdict: Verdict | None, *, inconclusive: str = "fail", require_gate: bool = False) -> int:
    """0 PASS, 1 FAIL, 1 INCONCLUSIVE unless ``inconclusive='pass'``; a run with no gate
    (nothing compared, or no criteria: NO_GATE) is 0, or 1 when ``require_gate``; 4
    INVALID (the data cannot be trusted), whatever the policy."""
    if verdict is not None and verdict.decision == INVALID:
        return EXIT_INVALID
    if verdict is None or verdict.decision == NO_GATE:
        return 1 if require_gate else 0
    if verdict.decision == PASS:
        return 0
    if verdict.decision == FAIL:
        return 1
    return 0 if inconclusive == "pass" else 1


def run(
    config: EvalConfig,
    *,
    output: str | Path | None = None,
    progress: bool = True,
    inconclusive: str = "fail",
    require_gate: bool = False,
    plots: bool = True,
) -> RunOutcome:
    """Evaluate, compare, gate, write the results folder, then log to MLflow. ``plots=False``
    draws no figures (``plots/``, the report's charts): a gate that reads the verdict."""
    from harness.apps.validate import check_output

    check_model_kinds({name: spec.kind for name, spec in config.models.items()})
    out_root = check_output(output or config.output)  # before any model runs, not after
    backend = engine_backend(config.engine)
    dataset = load_dataset(config, backend)
    summary = dataset_summary(dataset)
    say(f"dataset {dataset.name}: {len(dataset.train)} train interactions, "
         f"{summary['n_queries']} queries, fingerprint {dataset.fingerprint}")
    needs_mlflow = config.tracking.enabled or any(s.kind == "mlflow" for s in config.models.values()) or (
        config.compare is not None and config.compare.baseline.startswith(("runs:/", "models:/")))
    tracking_uri = resolve_tracking_uri(config.tracking.uri) if needs_mlflow else None
    results, info = evaluate_models(config, dataset, progress=progress, tracking_uri=tracking_uri, backend=backend)
    try:
        return _finish(config, results, info, summary, out_root, tracking_uri=tracking_uri,
                       inconclusive=inconclusive, require_gate=require_gate, plots=plots)
    finally:  # per-unit values a backend kept (Spark) are freed once the folder is written
        assemble.release(results)


def _finish(config: EvalConfig, results: dict[str, FamilyResult], info: dict[str, dict[str, Any]],
            summary: dict[str, Any], out_root: Path, *, tracking_uri: str | None, inconclusive: str,
            require_gate: bool, plots: bool) -> RunOutcome:
    """Compare, gate, write the results folder and log it: the end of :func:`run`."""
    for result in results.values():
        for notice in result.notices:
            say(f"NOTE: {notice}")
    verdict: Verdict | None = None
    rows: list[dict[str, Any]] = []
    if config.compare is not None:
        comparisons = compare_all(config, results)
        # criteria naming an attribution term (shapley/<stage>/<metric>, ...) are harness attribute's
        criteria = [c for c in config.gate if not is_attribution_criterion(c.metric)]
        if len(criteria) < len(config.gate):
            say(f"NOTE: {len(config.gate) - len(criteria)} gate criteria name attribution terms: "
                 "they are decided by 'harness attribute'")
        verdict = decide(criteria, comparisons, correction=config.compare.correction)
        verdict = invalidate(verdict, assemble.invalid(results))
        rows = comparison_rows(comparisons, verdict)
    result = EvalResult(
        run_id=new_run_id(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),
        dataset=summary,
        metrics=assemble.metric_rows(results),
        per_unit=assemble.per_unit_table(results),
        inputs=assemble.inputs_table(results),
        comparison=rows,
        verdict=verdict.to_dict() if verdict else {},
        extra={"units": info, **assemble.family_sections(results)},
    )
    results_dir = save_and_track(result, out_root, {"summary.md": markdown_summary(result),
                                                    "junit.xml": junit_xml(result), **assemble.files(results)},
                                 figures=assemble.figures(results), plots=plots,
                                 tracking_uri=tracking_uri if config.tracking.enabled else None)
    if config.tracking.enabled:
        if config.tracking.promote is not None and verdict is not None and verdict.decision == PASS:
            result.tracking["promoted"] = promote_candidate(config, info, tracking_uri)
            update_tracking(results_dir, result.tracking)
    return RunOutcome(result, results_dir, exit_code_for(verdict, inconclusive=inconclusive,
                                                         require_gate=require_gate))


def save_and_track(result: EvalResult, out_root: Path, files: dict[str, str], *, figures: dict[str, FigureDraw],
                   tracking_uri: str | None, plots: bool = True) -> Path:
    """The end of every command that writes a run: the results folder, whole or not at all
    (``figures`` drawn into it unless ``plots`` is off), then, with a ``tracking_uri``,
    MLflow (``result.tracking``). Returns the folder."""
    if tracking_uri is None:  # tracking off: nothing is waiting for `harness sync` to upload
        result.tracking = {**result.tracking, "status": "disabled"}
    results_dir = write_results(result, out_root, files, figures=figures if plots else None, finalize=write_report)
    say(f"results written to {results_dir}")
    if tracking_uri is not None:
        try:
            result.tracking = track(results_dir, result, tracking_uri)
        except InterruptedAfterWriting:
            raise
        except KeyboardInterrupt:
            raise InterruptedAfterWriting(results_dir) from None
    return results_dir


def resolve_tracking_uri(configured: str | None) -> str:
    from harness.tracking.store import resolve_uri

    return resolve_uri(configured)


def promote_candidate(config: EvalConfig, info: dict[str, Any], tracking_uri: str | None) -> dict[str, Any]:
    """Move the configured alias to the candidate's pinned version (called on PASS only)."""
    from harness.tracking.registry import parse_models_uri, promote

    if config.compare is None or config.tracking.promote is None:
        raise ConfigError("tracking.promote needs a compare section with one candidate")
    candidate = config.compare.candidates[0]
    uri = info[candidate]["model_version_uri"]
    try:
        record = promote(parse_models_uri(uri), config.tracking.promote.alias, tracking_uri)
    except TrackingError as exc:
        say(f"WARNING: promotion failed: {exc}")
        return {"status": "failed", "error": str(exc)}
    say(f"promoted {uri} to alias {record['alias']!r}")
    return {"status": "promoted", **record}


def track(results_dir: Path, result: EvalResult, uri: str) -> dict[str, Any]:
    """Log to MLflow; on failure, record ``pending`` and warn (the results are safe on disk)."""
    from harness.tracking.log import log_results

    try:
        tracking = log_results(results_dir, result.to_json_dict(), uri)
    except TrackingError as exc:
        tracking = {"status": "pending", "uri": uri, "mlflow_run_ids": {}, "error": str(exc)}
        say(f"WARNING: not logged to MLflow: {exc}. Results are safe in {results_dir}; upload "
             f"them later with 'harness sync {results_dir.parent}'.")
        update_tracking(results_dir, tracking)
        return tracking
    parent = tracking["mlflow_run_ids"]["parent"]
    try:  # logged: a Ctrl-C now leaves only the folder's own record of it to write
        say(f"logged to MLflow at {uri} (parent run {parent})")
        update_tracking(results_dir, tracking)
    except KeyboardInterrupt:
        raise InterruptedAfterWriting(results_dir, logged_run=parent) from None
    return tracking
