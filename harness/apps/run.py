"""The engine: dataset -> adapters -> outputs -> metric kernels -> per-unit values ->
EvalResult -> comparison -> gate -> results folder -> MLflow."""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from harness.types import Ranking, call_retriever
from harness.inference.paired import compare_models
from harness.spec.config import EvalConfig
from harness.errors import AdapterError, ConfigError, HarnessError, TrackingError
from harness.inference.gate import FAIL, PASS, Verdict, decide
from harness.inference.gate import comparison_rows as gate_comparison_rows
from harness.evaluate.beyond_accuracy import beyond_accuracy
from harness.evaluate.calibration import CalibrationRun
from harness.evaluate.off_policy import OffPolicyRun
from harness.evaluate.curves import curve_names, plot_metric_curves
from harness.metrics import evaluate_ranking
from harness.metrics.stats import mean_confidence_interval
from harness.adapters.registry import build_model
from harness.results.report import junit_xml, markdown_summary
from harness.results.folder import EvalResult, new_run_id, per_unit_long, update_tracking, write_results

QUERY_BATCH = 4096
# retrieval depth when no metric has a cut-off (e.g. only full-list 'map')
DEFAULT_DEPTH = 100


@dataclass
class RunOutcome:
    result: EvalResult
    results_dir: Path
    exit_code: int


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_dataset(config: EvalConfig) -> Any:
    """Build the data set named by ``config.dataset``, with its candidate set if any."""
    from harness.datasets import make_synthetic

    spec = config.dataset.model_dump(by_alias=True)
    candidates = spec.pop("candidates", None)
    if config.dataset.kind in ("movielens", "interactions"):  # file-backed: loaded, checked, split, judged
        from harness.datasets.interactions import dataset_from_spec

        dataset = dataset_from_spec(spec, seed=config.seed)
    else:
        spec.pop("kind")
        dataset = make_synthetic(**spec, seed=config.seed)
    if candidates is not None and candidates["kind"] != "full":
        dataset = _with_candidates(dataset, candidates)
    for warning in dataset.warnings:
        _say(f"WARNING: dataset: {warning}")
    return dataset


def _with_candidates(dataset: Any, spec: dict[str, Any]) -> Any:
    from harness.datasets.candidates import with_candidates

    table = None
    if spec["kind"] == "given":
        from harness.datasets.interactions import load_interactions

        table = load_interactions(spec["path"], columns={"user": spec["user"], "item": spec["item"]})
    settings = {k: v for k, v in spec.items() if v is not None}
    return with_candidates(dataset, settings, table)


def restrict_ranking(ranking: Ranking, dataset: Any, k: int) -> Ranking:
    """Keep each query's candidate items (in the model's order), then the first k."""
    from harness.datasets.candidates import restrict_to_candidates

    items, scores = restrict_to_candidates(ranking.query_ids, ranking.items, ranking.scores,
                                           dataset.candidates, n_items=dataset.n_items)
    return Ranking(ranking.query_ids, items[:, :k], scores[:, :k])


def retrieve_all(name: str, model: Any, query_ids: np.ndarray, k: int, *, progress: bool) -> Ranking:
    """Ask a retriever for top-k in query batches, checking every batch's output."""
    if not hasattr(model, "retrieve"):
        raise AdapterError(f"model {name!r} ({type(model).__name__}) has no retrieve(); "
                           "ranking metrics need a Retriever")
    items, scores = [], []
    batches = range(0, len(query_ids), QUERY_BATCH)
    for start in tqdm(batches, desc=f"retrieve {name}", unit="batch", disable=not progress,
                      file=sys.stderr, leave=False):
        q = query_ids[start : start + QUERY_BATCH]
        try:
            out = call_retriever(model, name, q, k)
        except AdapterError as exc:
            raise AdapterError(f"{exc} (queries {start}..{start + len(q) - 1})") from exc
        pad = k - out.k
        items.append(np.pad(out.items, ((0, 0), (0, pad)), constant_values=-1))
        scores.append(np.pad(out.scores, ((0, 0), (0, pad)), constant_values=-np.inf))
    return Ranking(query_ids, np.concatenate(items), np.concatenate(scores))


def _check_known_items(name: str, ranking: Ranking, n_items: int) -> None:
    unknown = ranking.items >= n_items
    if unknown.any():
        raise AdapterError(f"model {name!r} returned {int(unknown.sum())} item ids the dataset does "
                           f"not know (n_items={n_items}; e.g. {int(ranking.items[unknown][0])})")


def config_hash(config: EvalConfig) -> str:
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def evaluate_models(config: EvalConfig, dataset: Any, *, progress: bool,
                    tracking_uri: str | None = None,
                    on_model: Callable[[str, Any], None] | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Fit and run every model; return per-model per-query metric tables (indexed by
    the unit id as a string) and what is known about each model's units."""
    from harness.tracking import prior_runs as baselines

    ranking_cfg = config.evaluate.ranking
    cutoffs = [int(m.split("@")[1]) for m in ranking_cfg.metrics if "@" in m]
    k = ranking_cfg.k or max(cutoffs, default=DEFAULT_DEPTH)
    query_ids = dataset.query_ids
    per_unit: dict[str, pd.DataFrame] = {}
    info: dict[str, Any] = {}
    baseline = config.compare.baseline if config.compare else ""
    if baseline.startswith("runs:/"):
        per_unit[baseline], info[baseline] = baselines.load_prior_run(
            baseline, fingerprint=dataset.fingerprint, metrics=ranking_cfg.metrics, tracking_uri=tracking_uri)
        _say(f"baseline {baseline}: reusing its per-unit values")
    specs, pinned = baselines.plan_models(config, tracking_uri)
    settings = baselines.eval_settings_hash(config)
    for name, spec in specs.items():
        if name in pinned:
            info[name] = {"model_version_uri": pinned[name], "eval_settings": settings}
            stored = baselines.find_stored(pinned[name], fingerprint=dataset.fingerprint, settings=settings,
                                           metrics=ranking_cfg.metrics, tracking_uri=tracking_uri)
            if stored is not None:
                info[name]["reused_from"], per_unit[name] = stored
                _say(f"{name} ({pinned[name]}): reusing stored per-unit values of {stored[0]}")
                continue
        started_ms = int(time.time() * 1000)
        params = spec.params
        if spec.kind == "mlflow" and tracking_uri and "tracking_uri" not in params:
            params = {**params, "tracking_uri": tracking_uri}  # load from the store the config names
        model = build_model(name, spec.kind, params, dataset, config.seed)
        if hasattr(model, "fit"):
            _say(f"fitting {name} ({spec.kind}) on {len(dataset.train)} interactions")
            try:
                model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
            except HarnessError:
                raise
            except Exception as exc:
                raise AdapterError(f"model {name!r} raised {type(exc).__name__} in fit(): {exc}") from exc
        if on_model is not None:  # e.g. calibration scores the fitted model's probabilities
            on_model(name, model)
        from harness.adapters.pipeline import Pipeline, evaluate_pipeline, stage_summary

        stage_table = within_table = None
        if isinstance(model, Pipeline):  # per-stage columns such as "retrieval/recall@500"
            ranking, stage_table, within_table = evaluate_pipeline(name, model, dataset, ranking_cfg, k,
                                                                   progress=progress)
        elif dataset.candidates is not None:  # rank the whole catalogue, then judge among candidates
            ranking = restrict_ranking(retrieve_all(name, model, query_ids, dataset.n_items, progress=progress),
                                       dataset, k)
        else:
            ranking = retrieve_all(name, model, query_ids, k, progress=progress)
        _check_known_items(name, ranking, dataset.n_items)
        curve_metrics = curve_names(ranking_cfg.metrics)  # metric@k for every k, in the same pass
        res = evaluate_ranking(dataset.qrels, ranking, ranking_cfg.metrics, gain=ranking_cfg.gain,
                               ties=ranking_cfg.ties, relevance_threshold=ranking_cfg.relevance_threshold,
                               curves=curve_metrics or None, max_k=max(cutoffs, default=None))
        per_query = res.per_query if stage_table is None else res.per_query.join(stage_table)
        per_unit[name] = per_query.set_axis(per_query.index.astype(str))
        if config.evaluate.beyond_accuracy is not None:
            per_user, catalogue = beyond_accuracy(ranking, dataset, config.evaluate.beyond_accuracy.metrics,
                                                  seed=config.seed)
            per_unit[name] = per_unit[name].join(per_user)
            info.setdefault(name, {})["catalogue"] = catalogue
        if res.curves is not None:
            info.setdefault(name, {})["curves"] = {c: res.curves[c].tolist() for c in res.curves}
        if within_table is not None:  # each stage on its own candidates: query sets of their own
            info.setdefault(name, {})["stages"] = stage_summary(within_table, confidence=0.95)
        info.setdefault(name, {}).update(n_queries=res.n_queries, skipped=res.skipped,
                                         n_missing_from_run=res.n_missing_from_run,
                                         started_ms=started_ms, ended_ms=int(time.time() * 1000))
    return per_unit, info


def compared_metrics(config: EvalConfig) -> list[str]:
    """Per-query metrics that candidate and baseline are compared on."""
    beyond = config.evaluate.beyond_accuracy
    return config.evaluate.ranking.metrics + (beyond.per_user if beyond is not None else [])


def catalogue_rows(info: dict[str, Any]) -> list[dict[str, Any]]:
    """Catalogue-level beyond-accuracy values: one per model, no per-unit interval."""
    nan = float("nan")
    return [{"model": model, "metric": metric, "value": value, "ci_low": nan, "ci_high": nan,
             "n_units": i.get("n_queries", 0)}
            for model, i in info.items() for metric, value in i.get("catalogue", {}).items()]


def metric_rows(per_unit: dict[str, pd.DataFrame], confidence: float) -> list[dict[str, Any]]:
    rows = []
    for model, table in per_unit.items():
        for metric in table.columns:
            values = table[metric].to_numpy()
            low, high = mean_confidence_interval(values, confidence=confidence)
            rows.append({"model": model, "metric": metric, "value": float(values.mean()),
                         "ci_low": low, "ci_high": high, "n_units": int(values.size)})
    return rows


def exit_code_for(verdict: Verdict | None, *, inconclusive: str = "fail") -> int:
    """0 PASS (or no gate), 1 FAIL, 1 INCONCLUSIVE unless ``inconclusive='pass'``."""
    if verdict is None or verdict.decision == PASS:
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
) -> RunOutcome:
    """Evaluate, compare, gate, write the results folder, then log to MLflow."""
    dataset = load_dataset(config)
    _say(f"dataset {dataset.name}: {len(dataset.train)} train interactions, "
         f"{len(dataset.query_ids)} queries, fingerprint {dataset.fingerprint}")
    needs_mlflow = config.tracking.enabled or any(s.kind == "mlflow" for s in config.models.values()) or (
        config.compare is not None and config.compare.baseline.startswith(("runs:/", "models:/")))
    tracking_uri = resolve_tracking_uri(config.tracking.uri) if needs_mlflow else None
    calibration = CalibrationRun(config.evaluate.calibration, dataset, config.seed)  # inert if not configured
    off_policy = OffPolicyRun(config.evaluate.off_policy, dataset, config.seed)  # inert if not configured

    def on_model(name: str, model: Any) -> None:
        calibration(name, model)
        off_policy(name, model)
    per_unit, info = evaluate_models(config, dataset, progress=progress, tracking_uri=tracking_uri,
                                     on_model=on_model)
    confidence = config.compare.confidence if config.compare else 0.95
    comparison_rows: list[dict[str, Any]] = []
    verdict: Verdict | None = None
    if config.compare is not None:
        comps = compare_models(per_unit, baseline=config.compare.baseline,
                               candidates=config.compare.candidates,
                               metrics=compared_metrics(config), method=config.compare.method,
                               confidence=confidence, n_resamples=config.compare.n_resamples,
                               seed=config.seed)
        comps += calibration.compare(config.compare, config.seed)  # brier, log_loss, ece over click rows
        comps += off_policy.compare(config.compare, config.seed)  # estimators over logged rows
        verdict = decide(config.gate, comps, correction=config.compare.correction)
        comparison_rows = gate_comparison_rows(comps, verdict)
    result = EvalResult(
        run_id=new_run_id(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "settings": dataset.settings,
                 **{key: getattr(dataset, key) for key in ("warnings", "cold_start", "split_stats")
                    if getattr(dataset, key, None)}},
        metrics=(metric_rows(per_unit, confidence) + catalogue_rows(info) + calibration.metric_rows(confidence)
                 + off_policy.rows),
        per_unit=off_policy.with_units(calibration.with_units(per_unit_long(per_unit))),
        comparison=comparison_rows,
        verdict=verdict.to_dict() if verdict else {},
        extra={"units": info, **calibration.extra(), **off_policy.extra()},
    )
    out_root = Path(output or config.output)
    results_dir = write_results(result, out_root, {"summary.md": markdown_summary(result),
                                                   "junit.xml": junit_xml(result)},
                                figures={**_figures(info), **calibration.figures()})
    _say(f"results written to {results_dir}")
    if config.tracking.enabled:
        result.tracking = track(results_dir, result, tracking_uri)
        if config.tracking.promote is not None and verdict is not None and verdict.decision == PASS:
            result.tracking["promoted"] = promote_candidate(config, info, tracking_uri)
            update_tracking(results_dir, result.tracking)
    return RunOutcome(result, results_dir, exit_code_for(verdict, inconclusive=inconclusive))


def _figures(info: dict[str, Any]) -> dict[str, Any]:
    """PNG plots of the run: metric@k curves of every model."""
    curves = {m: pd.DataFrame(i["curves"], index=pd.RangeIndex(1, len(next(iter(i["curves"].values()))) + 1))
              for m, i in info.items() if i.get("curves")}
    if not curves:
        return {}
    import matplotlib.pyplot as plt

    fig = plot_metric_curves(curves)
    plt.close(fig)
    return {"ranking_curves": fig}


def resolve_tracking_uri(configured: str | None) -> str:
    from harness.tracking.log import resolve_uri

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
        _say(f"WARNING: promotion failed: {exc}")
        return {"status": "failed", "error": str(exc)}
    _say(f"promoted {uri} to alias {record['alias']!r}")
    return {"status": "promoted", **record}


def track(results_dir: Path, result: EvalResult, uri: str) -> dict[str, Any]:
    """Log to MLflow; on failure, record ``pending`` and warn (the results are safe on disk)."""
    from harness.tracking.log import log_results

    try:
        tracking = log_results(results_dir, result.to_json_dict(), uri)
        _say(f"logged to MLflow at {uri} (parent run {tracking['mlflow_run_ids']['parent']})")
    except TrackingError as exc:
        tracking = {"status": "pending", "uri": uri, "mlflow_run_ids": {}, "error": str(exc)}
        _say(f"WARNING: not logged to MLflow: {exc}. Results are safe in {results_dir}; upload "
             f"them later with 'harness sync {results_dir.parent}'.")
    update_tracking(results_dir, tracking)
    return tracking
