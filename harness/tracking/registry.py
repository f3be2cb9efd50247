"""Baselines from MLflow: registered-model aliases, prior runs, and promotion on PASS.

- ``models:/NAME@alias`` and ``models:/NAME/VERSION`` resolve to one model version, so a
  baseline is always pinned to the exact version it was evaluated at;
- ``runs:/<mlflow-run-id>`` names a model's child run of an earlier ``harness run``;
  its per-unit values are reused when its dataset fingerprint equals this evaluation's;
- ``promote`` moves an alias (e.g. ``champion``) to the candidate's version — only
  ever called on a PASS.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ConfigError, DataValidationError, TrackingError
from harness.spec.uris import ModelRef, parse_models_uri, parse_runs_uri

def _client(uri: str | None) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def resolve_version(ref: ModelRef, tracking_uri: str | None) -> ModelRef:
    """Pin an alias to the version it points at now."""
    if ref.version is not None:
        return ref
    try:
        mv = _client(tracking_uri).get_model_version_by_alias(ref.name, ref.alias)
    except Exception as exc:
        raise ConfigError(f"cannot resolve {ref.uri}: {exc}") from None
    return ModelRef(ref.name, str(mv.version), ref.alias)


def load_run_per_unit(run_uri: str, tracking_uri: str | None, *, fingerprint: str,
                      metrics: list[str]) -> tuple[str, dict[str, pd.DataFrame]]:
    """Per-unit values of the model logged in a prior harness child run.

    Returns ``(model name, {family: table indexed by unit_id, one column per metric})``.
    Refuses a run evaluated on other data (fingerprint) or lacking one of ``metrics``.
    """
    from harness.results.folder import PER_UNIT, RESULTS_JSON, read_results_folder, wide_table

    run_id = parse_runs_uri(run_uri)
    client = _client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:
        raise ConfigError(f"baseline {run_uri}: cannot read the run ({exc})") from None
    tags = run.data.tags
    model = tags.get("harness.model")
    parent = tags.get("mlflow.parentRunId")
    if model is None or parent is None:
        raise ConfigError(f"baseline {run_uri}: not a model run of a harness evaluation "
                          "(no harness.model tag); pick a child run")
    theirs = tags.get("harness.dataset_fingerprint")
    if theirs != fingerprint:
        raise DataValidationError(f"baseline {run_uri} was evaluated on dataset fingerprint {theirs}, "
                                  f"this evaluation uses {fingerprint}: the units would not pair")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for name in (RESULTS_JSON, PER_UNIT):
                client.download_artifacts(parent, name, tmp)
        except Exception as exc:
            raise TrackingError(f"baseline {run_uri}: cannot download {name} ({exc})") from None
        long = read_results_folder(Path(tmp)).per_unit
    long = long[long["model"] == model]
    missing = sorted(set(metrics) - set(long["metric"]))
    if missing:
        raise ConfigError(f"baseline {run_uri} has no per-unit values for {missing}")
    return model, {family: wide_table(rows) for family, rows in long.groupby("family", sort=False)}


def promote(ref: ModelRef, alias: str, tracking_uri: str | None) -> dict[str, str]:
    """Point ``alias`` of the registered model at the candidate's version."""
    pinned = resolve_version(ref, tracking_uri)
    try:
        _client(tracking_uri).set_registered_model_alias(pinned.name, alias, pinned.version)
    except Exception as exc:
        raise TrackingError(f"cannot set alias {alias!r} on {pinned.uri}: {exc}") from None
    return {"registered_model": pinned.name, "version": str(pinned.version), "alias": alias}
