"""Models logged to MLflow as ``pyfunc``: loaded by URI, scored in batches.

The model receives a DataFrame with the id columns (``query_id``, ``item_id`` by
default; renamable) and, when a feature builder is given, its feature columns; it
returns one score per row. The input schema of the model's signature is checked
against those columns when the model is loaded, not at the first failing batch.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from harness.adapters import check_probabilities
from harness.errors import AdapterError, ConfigError

from ._candidates import DEFAULT_PAIR_BATCH, PairScorer, score_in_batches
from .features import FeatureBuilder

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
def _tracking(uri: str | None) -> Iterator[None]:
    """Point MLflow at ``uri`` (tracking and registry) for the duration, then restore."""
    import mlflow

    if uri is None:
        yield
        return
    before_t, before_r = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before_t)
        mlflow.set_registry_uri(before_r)


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
        import mlflow

        self.uri = check_model_uri(uri)
        self.name = name or f"MLflowPyfunc({uri})"
        self.tracking_uri = tracking_uri
        self.features, self.query_col, self.item_col = features, query_col, item_col
        self.score_column = score_column
        self.candidates, self.n_candidates = candidates, n_candidates
        self.exclude_seen, self.batch_size = exclude_seen, batch_size
        try:
            with _tracking(tracking_uri):
                self.model = mlflow.pyfunc.load_model(uri)
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
