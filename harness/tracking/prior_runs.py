"""Where the baseline of a comparison comes from.

A baseline may be a model of the config, a prior harness run (``runs:/<id>``), or a
registered model (``models:/NAME@champion``). Registered models are pinned to the
version an alias points at when the run starts, and a stored per-unit result of that
exact version, data fingerprint and evaluation settings is reused instead of
re-evaluating the model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

from harness.spec.config import EvalConfig, ModelSpec
from harness.tracking.registry import load_run_per_unit, parse_models_uri, resolve_version


def eval_settings_hash(config: EvalConfig) -> str:
    """Hash of what decides per-unit values besides the model and the data."""
    text = json.dumps(config.evaluate.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def plan_models(config: EvalConfig, tracking_uri: str | None) -> tuple[dict[str, ModelSpec], dict[str, str]]:
    """The models to evaluate, with registered-model URIs pinned to versions.

    Returns ``(specs, pinned)``: ``pinned[name]`` is ``models:/NAME/VERSION``.
    """
    specs = dict(config.models)
    baseline = config.compare.baseline if config.compare else None
    if baseline and baseline.startswith("models:/"):
        specs = {baseline: ModelSpec(kind="mlflow", params={"uri": baseline}), **specs}
    pinned: dict[str, str] = {}
    for name, spec in specs.items():
        uri = str(spec.params.get("uri", ""))
        if spec.kind == "mlflow" and uri.startswith("models:/"):
            ref = resolve_version(parse_models_uri(uri), tracking_uri)
            pinned[name] = ref.uri
            specs[name] = spec.model_copy(update={"params": {**spec.params, "uri": ref.uri}})
    return specs, pinned


def find_stored(pinned_uri: str, *, fingerprint: str, settings: str, metrics: list[str],
                tracking_uri: str | None) -> tuple[str, dict[str, pd.DataFrame]] | None:
    """A prior child run of this exact model version, data and settings, if one is logged."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    if not experiments:
        return None
    runs = client.search_runs(
        experiments,
        filter_string=(f"tags.`harness.model_version_uri` = '{pinned_uri}' and "
                       f"tags.`harness.dataset_fingerprint` = '{fingerprint}' and "
                       f"tags.`harness.eval_settings` = '{settings}'"),
        order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        return None
    run_uri = f"runs:/{runs[0].info.run_id}"
    _, tables = load_run_per_unit(run_uri, tracking_uri, fingerprint=fingerprint, metrics=metrics)
    return run_uri, tables


def load_prior_run(run_uri: str, *, fingerprint: str, metrics: list[str],
                   tracking_uri: str | None) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
    """Per-unit values (by family) of a ``runs:/`` baseline, and where they came from."""
    model, tables = load_run_per_unit(run_uri, tracking_uri, fingerprint=fingerprint, metrics=metrics)
    return tables, {"reused_from": run_uri, "model": model}
