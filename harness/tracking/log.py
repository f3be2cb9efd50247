"""MLflow logging of a results folder: a parent run per evaluation, a child per model.

The only engine module that imports ``mlflow`` (lazily). It reads what the runner
already wrote to disk, so a tracking outage never loses an evaluation: the caller
records ``pending`` and ``harness sync`` logs it later, exactly once (a parent run is
found again by its ``harness.run_id`` tag).

Names: ``ndcg@10`` is logged as ``ndcg_at_10`` (MLflow keys cannot contain ``@``), its
interval as ``ndcg_at_10_ci_low`` / ``_ci_high``; deltas on the candidate's child run as
``delta_ndcg_at_10`` (+ ``_ci_low``, ``_ci_high``, ``_p_adj``); metric-at-k curves as
``ndcg`` with step = k.

At first glance in the runs table, the parent run carries the answer: its name starts
with the verdict, its tag ``gate.verdict`` holds it and its metric ``gate_verdict`` codes
it (1 PASS, 0 INCONCLUSIVE, -1 FAIL); with the candidate's primary (gated) metrics and
their deltas (``ndcg_at_10``, ``delta_ndcg_at_10``; prefixed ``<candidate>.`` when a run
compares several candidates). ``report.html`` is logged beside the results.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator

from harness.version import __version__
from harness.errors import TrackingError
from harness.results.folder import PER_UNIT, RESULTS_JSON
from harness.results.html import write_report
from harness.tracking.store import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, SHARED_VIEW_TAG, artifact_location,
                                    experiment_url, prepare_store, shared_view)

COMPLETE_TAG = "harness.logged"
MAX_BATCH = 1000
VERDICT_CODES = {"PASS": 1.0, "INCONCLUSIVE": 0.0, "FAIL": -1.0}  # the gate_verdict metric
ARTIFACTS = (RESULTS_JSON, PER_UNIT, "summary.md", "junit.xml", "report.html", "statistics.csv")


def mlflow_key(metric: str) -> str:
    """``ndcg@10`` -> ``ndcg_at_10``."""
    return metric.replace("@", "_at_")


def check_reachable(uri: str, timeout: float = 3.0) -> None:
    """Fail fast (``TrackingError``) when an HTTP tracking server does not answer."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            if resp.status != 200:
                raise TrackingError(f"tracking server {uri} answered {resp.status} on /health")
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(f"tracking server {uri} is unreachable: {exc}") from None


@contextlib.contextmanager
def _few_retries() -> Iterator[None]:
    """MLflow retries HTTP calls for minutes by default; a CI job should not wait that long."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def _quiet_store_creation() -> Iterator[None]:
    """MLflow announces at INFO that it creates a new SQLite store's tables ("Creating
    initial MLflow database tables...", "Updating database tables"): on a user's first
    run, two lines of MLflow's own among the harness's; its warnings still show."""
    logger = logging.getLogger("mlflow.store.db.utils")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _flat_params(prefix: str, params: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat_params(f"{prefix}{key}.", value))
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]
    return out


def _metric_entities(metrics: dict[str, float], step: int = 0) -> list[Any]:
    """MLflow metrics of the finite values; a missing or undefined value (e.g. the interval
    of a catalogue-level metric) is not logged, so the UI shows no NaN columns."""
    import math
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(k, float(v), now, step) for k, v in metrics.items()
            if v is not None and math.isfinite(float(v))]


def _model_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Point metrics with their intervals."""
    flat: dict[str, float] = {}
    for row in rows:
        key = mlflow_key(row["metric"])
        flat[key] = row["value"]
        flat[f"{key}_ci_low"] = row["ci_low"]
        flat[f"{key}_ci_high"] = row["ci_high"]
        flat[f"{key}_n_units"] = row["n_units"]
    return flat


def _curve_points(rows: list[dict[str, Any]], curves: dict[str, list[float]] | None) -> list[tuple[str, float, int]]:
    """(name, value, k) points: the run's full metric@k curves (k = 1..K), else the
    configured cut-offs (results written by a run without curves)."""
    if curves:
        return [(name, v, k) for name, values in curves.items() for k, v in enumerate(values, start=1)]
    return [(row["metric"].split("@", 1)[0], row["value"], int(row["metric"].split("@", 1)[1]))
            for row in rows if "@" in row["metric"]]


def _delta_metrics(rows: list[dict[str, Any]]) -> dict[str, float]:
    flat: dict[str, float] = {}
    for row in rows:
        key = "delta_" + mlflow_key(row["metric"])
        flat[key] = row["delta"]
        flat[f"{key}_ci_low"] = row["ci_low"]
        flat[f"{key}_ci_high"] = row["ci_high"]
        if row.get("p_adjusted") is not None:
            flat[f"{key}_p_adj"] = row["p_adjusted"]
    return flat


def _find_logged(client: Any, experiment_id: str, run_id: str) -> list[Any]:
    return client.search_runs([experiment_id], filter_string=f"tags.`harness.run_id` = '{run_id}'",
                              max_results=1000)


def log_results(results_dir: str | Path, data: dict[str, Any], uri: str) -> dict[str, Any]:
    """Log a complete results folder to MLflow; return the ``tracking`` record.

    Idempotent: a parent run already marked complete for this ``run_id`` is reused; a
    partial one (a crash mid-upload) is deleted and logged again.
    """
    from mlflow.tracking import MlflowClient

    check_reachable(uri)
    prepare_store(uri)
    results_dir = Path(results_dir)
    with _few_retries(), _quiet_store_creation():
        try:
            client = MlflowClient(tracking_uri=uri)
            return _log(client, results_dir, data, uri)
        except TrackingError:
            raise
        except Exception as exc:  # any failure of the store or the server
            raise TrackingError(f"logging to {uri} failed: {type(exc).__name__}: {exc}") from exc


def _log(client: Any, results_dir: Path, data: dict[str, Any], uri: str) -> dict[str, Any]:
    config = data["config"]
    run_id = data["run_id"]
    experiment = (config.get("tracking") or {}).get("experiment") or config["name"]
    experiment_id = _experiment(client, experiment, uri)

    existing = _find_logged(client, experiment_id, run_id)
    complete = [r for r in existing if r.data.tags.get(COMPLETE_TAG) == "complete"
                and "mlflow.parentRunId" not in r.data.tags]
    if complete:
        parent = complete[0]
        children = {r.data.tags.get("harness.model"): r.info.run_id for r in existing
                    if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
        return _record(uri, experiment_id, {"parent": parent.info.run_id, **children})
    for stale in existing:
        client.delete_run(stale.info.run_id)

    dataset = data["dataset"]
    verdict = data.get("verdict") or {}
    compare_cfg = config.get("compare") or _variant_roles(config)
    common_tags = {"harness.run_id": run_id, "harness.version": __version__,
                   "harness.dataset_fingerprint": str(dataset.get("fingerprint"))}
    commit = git_commit()
    if commit:
        common_tags["harness.git_commit"] = commit
    decision = verdict.get("decision", "n/a")
    launch = (data.get("ab") or {}).get("launch") or {}
    launch_tags = {"harness.offline_run_id": str(launch.get("offline_run_id")),
                   "harness.launch_treatment": str(launch.get("treatment")),
                   "harness.launch": config["name"]} if launch else {}
    parent = client.create_run(experiment_id, run_name=f"{decision} · {config['name']}",
                               tags={**common_tags, **launch_tags, "harness.role": "evaluation",
                                     "gate.verdict": decision})
    parent_id = parent.info.run_id
    headline = headline_metrics(data)
    client.log_batch(parent_id, metrics=_metric_entities({**headline, **decomposition_metrics(data)}))
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG, shared_view(list(headline)))
    client.log_batch(parent_id, params=_params({
        "dataset.name": dataset.get("name"), "dataset.fingerprint": dataset.get("fingerprint"),
        "seed": config.get("seed"), "metrics": ",".join(sorted({r["metric"] for r in data["metrics"]})),
        "compare.baseline": compare_cfg.get("baseline"), "compare.method": compare_cfg.get("method"),
        "compare.correction": compare_cfg.get("correction")}))
    ids = {"parent": parent_id}
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in data["metrics"]:
        by_model.setdefault(row["model"], []).append(row)
    criteria = verdict.get("criteria", [])
    for model, rows in by_model.items():
        role = ("baseline" if model == compare_cfg.get("baseline") else
                "candidate" if model in compare_cfg.get("candidates", []) else "model")
        tags = {**common_tags, "mlflow.parentRunId": parent_id, "harness.model": model, "harness.role": role}
        own = [c["outcome"] for c in criteria if c["candidate"] == model]
        for c in criteria:
            if c["candidate"] == model:  # per-criterion verdicts, searchable in the UI
                tags[f"gate.{mlflow_key(c['metric'])}"] = c["outcome"]
        if own:
            tags["gate.verdict"] = ("FAIL" if "FAIL" in own else "PASS" if set(own) == {"PASS"}
                                    else "INCONCLUSIVE")
        units = (data.get("units") or {}).get(model, {})
        for key in ("model_version_uri", "eval_settings", "reused_from"):
            if key in units:
                tags[f"harness.{key}"] = str(units[key])
        # the child run spans the model's own fit + evaluation, so the UI shows its duration
        child = client.create_run(experiment_id, run_name=model, tags=tags, start_time=units.get("started_ms"))
        cid = child.info.run_id
        ids[model] = cid
        spec = (config.get("models") or {}).get(model) or _implicit_spec(config, model)
        params = {"model.kind": spec["kind"], **_flat_params("model.params.", spec.get("params", {})),
                  "dataset.name": dataset.get("name"), "dataset.fingerprint": dataset.get("fingerprint"),
                  "seed": config.get("seed")}
        flat = _model_metrics(rows)
        comp_rows = [c for c in data.get("comparison", []) if c["candidate"] == model]
        flat.update(_delta_metrics(comp_rows))
        if launch and model == launch.get("treatment"):  # an A/B launch: the offline deltas beside the online ones
            flat.update({"offline_delta_" + mlflow_key(m): v for m, v in launch["offline_deltas"].items()})
            for row in comp_rows:  # and the online lift, the scale harness history compares them on
                if row.get("relative_delta") is not None:
                    key = "online_lift_" + mlflow_key(row["metric"])
                    flat.update({key: row["relative_delta"], f"{key}_ci_low": row["relative_ci_low"],
                                 f"{key}_ci_high": row["relative_ci_high"]})
        from mlflow.entities import Metric

        entities = _metric_entities(flat)
        stamp = entities[0].timestamp if entities else 0
        entities += [Metric(name, float(v), stamp, k) for name, v, k in _curve_points(rows, units.get("curves"))]
        client.log_batch(cid, params=_params(params))
        for start in range(0, len(entities), MAX_BATCH):  # MLflow takes <= 1000 metrics a call
            client.log_batch(cid, metrics=entities[start : start + MAX_BATCH])
        client.set_terminated(cid, end_time=units.get("ended_ms"))
    record = _record(uri, experiment_id, ids)
    write_report(results_dir, {**data, "tracking": record})  # the logged copy links its MLflow runs
    for name in ARTIFACTS:
        if (results_dir / name).is_file():
            client.log_artifact(parent_id, str(results_dir / name))
    if (results_dir / "plots").is_dir():
        client.log_artifacts(parent_id, str(results_dir / "plots"), artifact_path="plots")
    client.set_tag(parent_id, COMPLETE_TAG, "complete")
    client.set_terminated(parent_id)
    return record


def _experiment(client: Any, name: str, uri: str) -> str:
    """The experiment's id, created when new: tagged as a machine-learning experiment
    (the UI opens it on its runs table) and, in the default store, with its artifacts
    beside the store."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        return client.create_experiment(name, artifact_location=artifact_location(uri, name),
                                        tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    if EXPERIMENT_KIND_TAG not in exp.tags:  # made by an older harness or by hand
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return exp.experiment_id


def _record(uri: str, experiment_id: str, ids: dict[str, str]) -> dict[str, Any]:
    """``results.json["tracking"]``, with the UI's links when the store is a server."""
    record: dict[str, Any] = {"status": "logged", "uri": uri, "experiment_id": experiment_id, "mlflow_run_ids": ids}
    url = experiment_url(uri, experiment_id)
    if url:
        record["ui"] = {"experiment": url, "parent": experiment_url(uri, experiment_id, ids["parent"])}
    return record


def headline_metrics(data: dict[str, Any]) -> dict[str, float]:
    """The parent run's metrics: ``gate_verdict`` (1 PASS, 0 INCONCLUSIVE, -1 FAIL; absent
    without a gate) and, for each primary gate criterion, the candidate's value and delta
    (``<candidate>.`` prefixed when several candidates are compared)."""
    verdict = data.get("verdict") or {}
    flat: dict[str, float] = {}
    if verdict.get("decision") in VERDICT_CODES:
        flat["gate_verdict"] = VERDICT_CODES[verdict["decision"]]
    primary = [c for c in verdict.get("criteria", []) if c.get("role") == "primary"]
    several = len({c["candidate"] for c in primary}) > 1
    values = {(r["model"], r["metric"]): r["value"] for r in data["metrics"]}
    deltas = {(r["candidate"], r["metric"]): r["delta"] for r in data.get("comparison", [])}
    for c in primary:
        prefix = f"{c['candidate']}." if several else ""
        key = mlflow_key(c["metric"])
        flat[prefix + key] = values.get((c["candidate"], c["metric"]))
        flat[f"{prefix}delta_{key}"] = deltas.get((c["candidate"], c["metric"]))
    return flat


def decomposition_metrics(data: dict[str, Any]) -> dict[str, float]:
    """The parent run's view of ``results.json["decomposition"]``: per metric
    ``decomposition.within.<metric>`` and ``.mix.``, and each segment's change
    ``decomposition.delta.<metric>.<segment>`` (characters MLflow refuses written ``_``)."""
    import re

    block = data.get("decomposition") or {}
    flat: dict[str, float] = {}
    for metric, entry in (block.get("metrics") or {}).items():
        key = mlflow_key(metric)
        flat[f"decomposition.within.{key}"] = entry["within"]
        flat[f"decomposition.mix.{key}"] = entry["mix"]
        for seg in entry["segments"]:
            name = re.sub(r"[^\w\-. /]", "_", seg["segment"])
            flat[f"decomposition.delta.{key}.{name}"] = seg["delta"]
    return flat


def _implicit_spec(config: dict[str, Any], model: str) -> dict[str, Any]:
    """What a model not in ``config["models"]`` is: an A/B variant, a prior run, or a registered model."""
    if "variants" in config:
        return {"kind": "variant", "params": {}}
    return {"kind": "prior_run" if model.startswith("runs:/") else "mlflow", "params": {"uri": model}}


def _variant_roles(config: dict[str, Any]) -> dict[str, Any]:
    """An A/B config (``harness ab``): the control is the baseline, the treatments the candidates."""
    variants = config.get("variants") or {}
    if not variants:
        return {}
    return {"baseline": variants["control"], "candidates": variants["treatments"], "method": "ab",
            "correction": (config.get("analysis") or {}).get("correction")}


def _params(params: dict[str, Any]) -> list[Any]:
    from mlflow.entities import Param

    return [Param(k, str(v)) for k, v in params.items() if v is not None]
