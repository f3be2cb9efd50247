"""Launches read back from an MLflow tracking store, for ``harness history``.

Every ``harness ab`` run with a ``launch`` section is logged as a parent run tagged
``harness.offline_run_id`` (the offline ``harness run`` that sent the candidate to the
test) and ``harness.launch_treatment``, with its ``results.json`` as an artifact; the
treatment's child run carries the offline deltas (``offline_delta_<metric>``) beside the
online ones (``delta_<metric>``, and the relative lift ``online_lift_<metric>``). History
reads each launch's ``results.json`` back, so the rows are built exactly as from a
results folder (same names, same values), whatever the store: a sqlite or file store,
or a tracking server.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, TrackingError
from harness.results.folder import RESULTS_JSON
from harness.tracking.log import COMPLETE_TAG, _few_retries, check_reachable

OFFLINE_TAG = "harness.offline_run_id"


def logged_launches(uri: str, *, experiments: list[str] | None = None) -> list[dict[str, Any]]:
    """The ``results.json`` of every completely logged launch in the store at ``uri``, in
    the experiments named (default: every experiment). An experiment name the store does
    not know is a ``ConfigError`` naming the ones it has; an unreachable store a
    ``TrackingError``."""
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    check_reachable(uri)
    with _few_retries():
        try:
            client = MlflowClient(tracking_uri=uri)
            known = {e.name: e.experiment_id for e in client.search_experiments()}
            if experiments:
                missing = [e for e in experiments if e not in known]
                if missing:
                    raise ConfigError(f"history: experiment(s) {missing} are not in the MLflow store {uri}; "
                                      f"it has {sorted(known)}")
            ids = [known[e] for e in experiments] if experiments else list(known.values())
            runs, token = [], None
            while ids:  # parent runs of launches, page by page
                page = client.search_runs(ids, filter_string=f"tags.`{COMPLETE_TAG}` = 'complete'",
                                          max_results=1000, page_token=token)
                runs += [r for r in page if OFFLINE_TAG in r.data.tags and "mlflow.parentRunId" not in r.data.tags]
                token = page.token
                if not token:
                    break
            out = []
            with tempfile.TemporaryDirectory(prefix="harness-history-") as tmp:
                for run in runs:
                    dst = Path(tmp) / run.info.run_id
                    path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path=RESULTS_JSON,
                                                               dst_path=str(dst), tracking_uri=uri)
                    out.append(json.loads(Path(path).read_text()))
            return out
        except (ConfigError, TrackingError):
            raise
        except Exception as exc:  # any failure of the store or the server
            raise TrackingError(f"reading launches from {uri} failed: {type(exc).__name__}: {exc}") from exc
