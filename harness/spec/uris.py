"""MLflow URIs a config may name: ``models:/NAME/VERSION``, ``models:/NAME@alias``, ``runs:/<id>``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import ConfigError

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


def is_external_baseline(baseline: str) -> bool:
    """``runs:/<id>`` (a prior harness run) or ``models:/...`` (a registered model)."""
    return baseline.startswith(("runs:/", "models:/"))
