"""Models logged to MLflow as ``pyfunc``: loaded by URI, scored in batches.

The model receives a DataFrame with the id columns (``query_id``, ``item_id`` by
default; renamable) and, when a feature builder is given, its feature columns; it
returns one score per row. The input schema of the model's signature is checked
against those columns when the model is loaded, not at the first failing batch.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from harness.types import check_probabilities
from harness.errors import AdapterError, ConfigError

from ._candidates import DEFAULT_PAIR_BATCH, PairScorer, score_in_batches
from .features import FeatureBuilder

_MODELS = re.compile(r"^models:/(?P<name>[^/@\s]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_\-]+))$")
_URI = re.compile(r"^(models:/[^/@\s]+(/\d+|@[A-Za-z0-9_\-]+)|runs:/[0-9a-f]{32}/\S+)$")


def check_model_uri(uri: str) -> str:
    """``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH`` or a local model folder."""
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"mlflow: uri must be a non-empty string, got {uri!r}")
    if _URI.match(uri) or (Path(uri) / "MLmodel").is_file():
        return uri
    raise ConfigError(f"mlflow: {uri!r} is not a model URI; use models:/NAME@alias, models:/NAME/VERSION, "
                      "runs:/<run id>/<artifact path> or a local folder holding an MLmodel file")


@contextmanager
def global_tracking_uri(uri: str | None) -> Iterator[None]:
    """MLflow's global tracking URI set to ``uri`` (if given) for the block, then restored
    exactly: the module setting and the ``MLFLOW_TRACKING_URI`` variable, which
    ``mlflow.set_tracking_uri`` also writes."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if uri is None:
        yield
        return
    saved, saved_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved)
        if saved_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved_env


def _load(uri: str, tracking_uri: str | None) -> tuple[Any, Any]:
    """Download the model's files from ``tracking_uri`` (without touching MLflow's global
    tracking/registry settings) and load them; returns ``(model, tempdir)``."""
    import tempfile

    import mlflow

    if (Path(uri) / "MLmodel").is_file():
        return mlflow.pyfunc.load_model(uri), None
    from mlflow.tracking import MlflowClient

    source = uri
    match = _MODELS.match(uri)
    if match:  # resolve the registered version to where its files are, on this store
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        version = match["version"] or client.get_model_version_by_alias(match["name"], match["alias"]).version
        source = client.get_model_version_download_uri(match["name"], version)
    else:
        # runs:/ may name an MLflow 3 logged model, which only the run-URI resolver finds;
        # it reads the global tracking URI, so set it for the call and restore it exactly
        with global_tracking_uri(tracking_uri):
            return mlflow.pyfunc.load_model(uri), None
    tmp = tempfile.TemporaryDirectory(prefix="harness-pyfunc-")
    local = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=tmp.name, tracking_uri=tracking_uri)
    return mlflow.pyfunc.load_model(local), tmp


class MLflowPyfunc(PairScorer):
    """A ``pyfunc`` model from MLflow as ranker, retriever and pointwise model.

    Parameters
    ----------
    uri : str
        ``models:/NAME@alias``, ``models:/NAME/VERSION``, ``runs:/RUN_ID/PATH`` or a
        local model folder.
    tracking_uri : str, optional
        Tracking/registry server (default: MLflow's configured one).
    features : FeatureBuilder, optional
        Feature columns appended to the id columns of each input row.
    query_col, item_col : str
        Names of the id columns in the model's input.
    score_column : str, optional
        Which column holds the score when the model returns a DataFrame of several.
    candidates, n_candidates, exclude_seen, batch_size, name
        As for :class:`~harness.models.xgboost_ranker.XGBoostRanker`; ``batch_size``
        rows go to each ``predict`` call.
    """

    def __init__(self, uri: str, *, tracking_uri: str | None = None, features: FeatureBuilder | None = None,
                 query_col: str = "query_id", item_col: str = "item_id", score_column: str | None = None,
                 candidates: Any = None, n_candidates: int | None = None, exclude_seen: bool = True,
                 batch_size: int = DEFAULT_PAIR_BATCH, name: str | None = None) -> None:
        self.uri = check_model_uri(uri)
        self.name = name or f"MLflowPyfunc({uri})"
        self.tracking_uri = tracking_uri
        self.features, self.query_col, self.item_col = features, query_col, item_col
        self.score_column = score_column
        self.candidates, self.n_candidates = candidates, n_candidates
        self.exclude_seen, self.batch_size = exclude_seen, batch_size
        try:
            self.model, self._files = _load(uri, tracking_uri)
        except Exception as exc:  # missing model, unknown alias, unreachable server
            raise ConfigError(f"{self.name}: cannot load the model: {type(exc).__name__}: {exc}") from exc
        self._check_schema()

    @property
    def input_columns(self) -> list[str]:
        """The columns this adapter sends: the id columns, then the features."""
        return [self.query_col, self.item_col] + (self.features.feature_names if self.features else [])

    def _check_schema(self) -> None:
        schema = self.model.metadata.get_input_schema()
        if schema is None or not schema.has_input_names():
            return  # no signature, or a tensor signature: MLflow checks what it can
        required = schema.required_input_names() if hasattr(schema, "required_input_names") else \
            schema.input_names()
        missing = [c for c in required if c not in self.input_columns]
        if missing:
            raise ConfigError(f"{self.name}: the model's input schema requires column(s) {missing} that the "
                              f"adapter does not send; it sends {self.input_columns} (set query_col/item_col "
                              "or give a FeatureBuilder with those features)")

    def _frame(self, pairs: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame({self.query_col: pairs["query_id"].to_numpy(),
                              self.item_col: pairs["item_id"].to_numpy()})
        if self.features is not None:
            frame = pd.concat([frame, self.features.build(pairs).reset_index(drop=True)], axis=1)
        return frame

    def _score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        out = self.model.predict(self._frame(pairs))
        if isinstance(out, pd.DataFrame):
            if self.score_column is not None:
                if self.score_column not in out.columns:
                    raise AdapterError(f"predict() returned columns {list(out.columns)}, "
                                       f"not score_column {self.score_column!r}")
                out = out[self.score_column]
            elif out.shape[1] != 1:
                raise AdapterError(f"predict() returned {out.shape[1]} columns {list(out.columns)}; "
                                   "set score_column")
            else:
                out = out.iloc[:, 0]
        return np.asarray(out)

    def predict(self, pairs: pd.DataFrame) -> np.ndarray:
        """Scores of ``(query_id, item_id)`` rows, in batches of ``batch_size``."""
        return score_in_batches(self._score_pairs, pairs, source=self.name, batch_size=self.batch_size)

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """The scores as probabilities; an ``AdapterError`` if any leaves [0, 1]."""
        return check_probabilities(self.predict(pairs), len(pairs), source=self.name)
