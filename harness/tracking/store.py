"""Where MLflow data goes when nothing says otherwise, and how the UI is reached.

MLflow's own default (``sqlite:///mlflow.db``, artifacts in ``./mlruns``) is relative to
the working directory, so runs made from another folder are invisible to a UI started
in the project. The harness instead keeps one store per user, which ``harness run``,
``harness sync`` and ``make ui`` (``mlflow/start.sh`` asks ``harness store``) all use:

- ``$HARNESS_HOME``, else ``$XDG_DATA_HOME/recsys-harness``, else
  ``~/.local/share/recsys-harness``;
- ``mlflow.db`` in it (the backend store), ``mlartifacts/`` beside it.

A tracking URI set explicitly (the config's ``tracking.uri``, ``MLFLOW_TRACKING_URI``
or ``mlflow.set_tracking_uri``) always wins.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import quote

HOME_ENV = "HARNESS_HOME"
# MLflow 3.x's UI shows an experiment as "Machine learning" (runs table first) or "GenAI"
# (traces overview first). The tag is what MLflow's own experiment-type selector writes;
# MLflow 3.17's UI reads the type from the URL's ``workflowType`` parameter instead, so
# links the harness prints carry both (see ``experiment_url``).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
WORKFLOW_QUERY = "workflowType=machine_learning"
# The runs table shows no metric column until one is picked; a "shared view" (MLflow's
# Share button: an experiment tag holding the table's state as JSON, opened by the URL's
# viewStateShareKey) picks the verdict and headline columns for the harness's links.
SHARED_VIEW_KEY = "harness"
SHARED_VIEW_TAG = f"mlflow.sharedViewState.{SHARED_VIEW_KEY}"


def harness_home() -> Path:
    """The folder of the harness's default MLflow store (not created here)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser().resolve()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser().resolve() / "recsys-harness"


def default_store_uri() -> str:
    """``sqlite:////<home>/mlflow.db``: the backend store both the harness and ``make ui`` use."""
    return f"sqlite:///{harness_home() / 'mlflow.db'}"


def default_artifact_root() -> Path:
    return harness_home() / "mlartifacts"


def resolve_uri(configured: str | None) -> str:
    """The config's URI, else one set for MLflow (environment or ``set_tracking_uri``),
    else the harness's default store (its folder is created when first logged to:
    :func:`prepare_store`)."""
    if configured:
        return configured
    from mlflow.tracking._tracking_service.utils import is_tracking_uri_set

    if is_tracking_uri_set():
        import mlflow

        return mlflow.get_tracking_uri()
    return default_store_uri()


def prepare_store(uri: str) -> None:
    """Create the default store's folder when ``uri`` is that store. A folder that cannot
    be created (``HARNESS_HOME`` on a read-only disk, or a file) is a ``TrackingError``,
    raised when logging, after the results folder is written: the run is then pending,
    as with a server that is down, not lost."""
    from harness.errors import TrackingError

    if uri != default_store_uri():
        return
    home = harness_home()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(f"the harness's MLflow store folder {home} cannot be created ({exc.strerror or exc}); "
                            f"set {HOME_ENV} to a writable folder, or tracking.uri") from None


def artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside the default store when logging to it
    (never the working directory); elsewhere the store or server decides (None)."""
    if uri != default_store_uri():
        return None
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", experiment).strip("-") or "experiment"
    return str(default_artifact_root() / slug)


def shared_view(metric_keys: list[str]) -> str:
    """The shared view's tag value: the verdict tag and metric, then the headline metrics."""
    import json

    columns = ["tags.`gate.verdict`", "metrics.`gate_verdict`", *(f"metrics.`{k}`" for k in metric_keys
                                                                   if k != "gate_verdict"), "attributes.`Duration`"]
    return json.dumps({"selectedColumns": columns})


def experiment_url(uri: str, experiment_id: str, run_id: str | None = None) -> str | None:
    """The MLflow UI page of an experiment's runs table (with the harness's shared view)
    or of one run, on an HTTP tracking server, opened in the classic machine-learning
    view; None for local stores."""
    if not uri.startswith(("http://", "https://")):
        return None
    if run_id:
        return f"{uri.rstrip('/')}/#/experiments/{quote(experiment_id)}/runs/{quote(run_id)}?{WORKFLOW_QUERY}"
    return (f"{uri.rstrip('/')}/#/experiments/{quote(experiment_id)}/runs?viewStateShareKey={SHARED_VIEW_KEY}"
            f"&{WORKFLOW_QUERY}")
