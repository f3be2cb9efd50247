"""The results folder ``results/<run-id>/``: written completely, atomically, before MLflow.

- ``results.json``: config, dataset fingerprint, metric rows, comparison rows, verdict,
  tracking status;
- ``per_unit.parquet``: long table ``{unit_id, model, metric, value}``;
- ``summary.md`` and ``junit.xml`` (see ``harness.results.report``).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ResultsError

SCHEMA_VERSION = 1
RESULTS_JSON = "results.json"
PER_UNIT = "per_unit.parquet"


def new_run_id() -> str:
    """Sortable, unique: ``20261123T101500Z-1a2b3c4d``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


@dataclass
class EvalResult:
    """Everything one evaluation produced, ready to be written and logged."""

    run_id: str
    created_at: str
    config: dict[str, Any]
    config_hash: str
    dataset: dict[str, Any]
    metrics: list[dict[str, Any]]
    per_unit: pd.DataFrame
    comparison: list[dict[str, Any]] = field(default_factory=list)
    verdict: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=lambda: {"status": "pending", "uri": None,
                                                              "mlflow_run_ids": {}})
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "config": self.config,
            "config_hash": self.config_hash,
            "dataset": self.dataset,
            "metrics": self.metrics,
            "comparison": self.comparison,
            "verdict": self.verdict,
            "tracking": self.tracking,
            **self.extra,
        }

    @property
    def metrics_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _clean_floats(obj: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean_floats(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean_floats(v) for v in obj]
    return obj


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean_floats(data), indent=2, default=_json_default) + "\n")
    os.replace(tmp, path)


def write_results(result: EvalResult, output: str | Path, extra_files: dict[str, str] | None = None,
                  figures: dict[str, Any] | None = None) -> Path:
    """Write the results folder completely under a temporary name, then rename it.

    ``figures`` (name -> matplotlib figure) are saved as ``plots/<name>.png``. A crash
    leaves either no folder or a complete one, never a half-written one.
    """
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    final = root / result.run_id
    tmp = root / f".tmp-{result.run_id}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        write_json_atomic(tmp / RESULTS_JSON, result.to_json_dict())
        result.per_unit.to_parquet(tmp / PER_UNIT, index=False)
        for name, text in (extra_files or {}).items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)
        for name, fig in (figures or {}).items():
            (tmp / "plots").mkdir(exist_ok=True)
            fig.savefig(tmp / "plots" / f"{name}.png", dpi=110)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def update_tracking(results_dir: Path, tracking: dict[str, Any]) -> None:
    """Record the tracking status in ``results.json`` (atomically)."""
    data = read_results_json(results_dir)
    data["tracking"] = tracking
    write_json_atomic(Path(results_dir) / RESULTS_JSON, data)


def read_results_json(results_dir: str | Path) -> dict[str, Any]:
    path = Path(results_dir) / RESULTS_JSON
    if not path.is_file():
        raise ResultsError(f"no {RESULTS_JSON} in {results_dir}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path}: not valid JSON ({exc})") from None
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: schema_version {data.get('schema_version')!r} is not "
                           f"{SCHEMA_VERSION}, the version this harness reads")
    return data


def per_unit_long(per_model: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table ``{unit_id, model, metric, value}`` from per-model wide tables."""
    frames = []
    for model, wide in per_model.items():
        long = wide.rename_axis("unit_id").reset_index().melt(
            id_vars="unit_id", var_name="metric", value_name="value")
        long.insert(1, "model", model)
        frames.append(long)
    out = pd.concat(frames, ignore_index=True)
    out["unit_id"] = out["unit_id"].astype(str)
    return out
