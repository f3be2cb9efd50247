"""Baselines from MLflow: registered-model aliases, prior runs, and promotion on PASS.

- ``models:/NAME@alias`` and ``models:/NAME/VERSION`` resolve to one model version, so a
  baseline is always pinned to the exact version it was evaluated at;
- ``runs:/<mlflow-run-id>`` names a model's child run of an earlier ``harness run``;
  its per-unit values are reused when its dataset fingerprint equals this evaluation's;
- ``promote`` moves an alias (e.g. ``champion``) to the candidate's version — only
  ever called on a PASS.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness.errors import ConfigError, DataValidationError, TrackingError

_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})/?$")


@dataclass(frozen=True)
class ModelRef:
    """A registered model version, as named in a config."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}" if self.version else f"models:/{self.name}@{self.alias}"


def parse_models_uri(uri: str) -> ModelRef:
    """``models:/NAME/VERSION`` or ``models:/NAME@alias`` -> ``ModelRef``."""
    match = _MODELS_URI.match(uri.strip())
    if match is None:
        raise ConfigError(f"{uri!r} is not a registered-model URI; use models:/NAME/VERSION or models:/NAME@alias")
    return ModelRef(match["name"], match["version"], match["alias"])


def parse_runs_uri(uri: str) -> str:
    """``runs:/<32-hex run id>`` -> the run id."""
    match = _RUNS_URI.match(uri.strip())
    if match is None:
        raise ConfigError(f"{uri!r} is not a run URI; use runs:/<mlflow run id>")
    return match["run_id"]


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
                      metrics: list[str]) -> tuple[str, pd.DataFrame]:
    """Per-unit values of the model logged in a prior harness child run.

    Returns ``(model name, table indexed by unit_id with one column per metric)``.
    Refuses a run evaluated on other data (fingerprint) or lacking a metric.
    """
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
            path = client.download_artifacts(parent, "per_unit.parquet", tmp)
        except Exception as exc:
            raise TrackingError(f"baseline {run_uri}: cannot download per_unit.parquet ({exc})") from None
        long = pd.read_parquet(Path(path))
    long = long[long["model"] == model]
    missing = sorted(set(metrics) - set(long["metric"]))
    if missing:
        raise ConfigError(f"baseline {run_uri} has no per-unit values for {missing}")
    table = long[long["metric"].isin(metrics)].pivot(index="unit_id", columns="metric", values="value")
    return model, table[metrics]


def promote(ref: ModelRef, alias: str, tracking_uri: str | None) -> dict[str, str]:
    """Point ``alias`` of the registered model at the candidate's version."""
    pinned = resolve_version(ref, tracking_uri)
    try:
        _client(tracking_uri).set_registered_model_alias(pinned.name, alias, pinned.version)
    except Exception as exc:
        raise TrackingError(f"cannot set alias {alias!r} on {pinned.uri}: {exc}") from None
    return {"registered_model": pinned.name, "version": str(pinned.version), "alias": alias}
