"""An ``mlflow.model_evaluator`` plugin named ``harness``.

Registered through the entry point ``mlflow.model_evaluator: harness`` in
``pyproject.toml``, so that::

    mlflow.models.evaluate(model, data, targets="relevance", model_type="ranking",
                           evaluators="harness",
                           evaluator_config={"query_col": "user_id", "item_col": "item_id",
                                             "metrics": ["ndcg@10", "recall@20"]})

(with ``evaluators=["harness", ...]`` MLflow wants ``evaluator_config={"harness": {...}}``)

computes the harness's ranking metrics on (query, item, relevance) rows — the model
scores each row, or the scores come from ``predictions=`` — and logs them to the active
run like MLflow's own evaluators do (``ndcg_at_10``; per-query values as a table
artifact). When the labels are 0/1 and the scores are probabilities, calibration metrics
are logged too (``calibration_ece``, ``calibration_brier``, ...; ``calibration: false`` in
the evaluator config turns them off). ``model_type`` may be ``"ranking"`` or ``"retrieval"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlflow.models.evaluation import EvaluationResult, ModelEvaluator

from harness.errors import ConfigError, DataValidationError
from harness.types import adapter_call

MODEL_TYPES = ("ranking", "retrieval")
DEFAULT_METRICS = ["ndcg@10", "recall@10", "precision@10", "map@10", "mrr@10"]


def _scores(model: Any, dataset: Any, predictions: str | None) -> np.ndarray:
    if model is not None:
        with adapter_call(type(model).__name__, "predict"):
            out = model.predict(dataset.features_data)
        if isinstance(out, pd.DataFrame):
            out = out[predictions] if predictions else out.iloc[:, 0]
        return np.asarray(out, dtype=np.float64).reshape(-1)
    if dataset.predictions_data is None:
        raise ConfigError("harness evaluator: give a model or a predictions column")
    return np.asarray(dataset.predictions_data, dtype=np.float64).reshape(-1)


def _binary_probabilities(labels: np.ndarray, scores: np.ndarray) -> bool:
    """Calibration applies when labels are 0/1 and scores are probabilities."""
    return bool(np.isin(labels, (0.0, 1.0)).all() and ((scores >= 0) & (scores <= 1)).all())


class HarnessEvaluator(ModelEvaluator):
    """Ranking metrics with trec_eval semantics for ``mlflow.models.evaluate``."""

    @classmethod
    def can_evaluate(cls, *, model_type: str, evaluator_config: dict[str, Any], **kwargs: Any) -> bool:
        return model_type in MODEL_TYPES

    def evaluate(self, *, model_type: str, dataset: Any, run_id: str, evaluator_config: dict[str, Any],
                 model: Any = None, extra_metrics: Any = None, custom_artifacts: Any = None,
                 predictions: str | None = None, **kwargs: Any) -> EvaluationResult:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        from harness.metrics import evaluate_ranking
        from harness.tracking.log import mlflow_key

        config = dict(evaluator_config or {})
        query_col = config.pop("query_col", "query_id")
        item_col = config.pop("item_col", "item_id")
        metrics = config.pop("metrics", DEFAULT_METRICS)
        options = {k: config.pop(k) for k in ("gain", "ties", "relevance_threshold") if k in config}
        calibration = bool(config.pop("calibration", True))
        if config:
            raise ConfigError(f"harness evaluator: unknown evaluator_config keys {sorted(config)}")
        features = dataset.features_data
        if not isinstance(features, pd.DataFrame):
            raise DataValidationError("harness evaluator: data must be a DataFrame with query and item columns")
        for col in (query_col, item_col):
            if col not in features.columns:
                raise DataValidationError(f"harness evaluator: column {col!r} not in data "
                                          f"(columns: {list(features.columns)})")
        if not dataset.has_targets:
            raise DataValidationError("harness evaluator: pass targets= naming the relevance column")
        scores = _scores(model, dataset, predictions)
        if scores.shape[0] != len(features):
            raise DataValidationError(f"harness evaluator: {scores.shape[0]} scores for {len(features)} rows")
        ids = {"query_id": features[query_col].to_numpy(), "item_id": features[item_col].to_numpy()}
        qrels = pd.DataFrame({**ids, "relevance": np.asarray(dataset.labels_data)})
        run = pd.DataFrame({**ids, "score": scores})
        result = evaluate_ranking(qrels, run, metrics, **options)
        values = {mlflow_key(k): v for k, v in result.means.items()}
        values["n_queries"] = float(result.n_queries)
        labels = np.asarray(dataset.labels_data, dtype=np.float64)
        if calibration and _binary_probabilities(labels, scores):
            from harness.metrics import calibration_summary

            values.update({f"calibration_{k}": v for k, v in calibration_summary(labels, scores).items()})
        client = MlflowClient()
        client.log_batch(run_id, metrics=[Metric(k, float(v), 0, 0) for k, v in values.items()])
        table = result.per_query.reset_index()
        table["query_id"] = table["query_id"].astype(str)
        client.log_table(run_id, data=table, artifact_file="harness_per_query.json")
        return EvaluationResult(metrics=values, artifacts={}, run_id=run_id)
