"""The `harness` evaluator plugin through `mlflow.models.evaluate`."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tests import reference as ref
from tests.conftest import NO_INFERENCE, migrated_store


class ScoreColumn(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input["feature"].to_numpy() * 2.0


def _data(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n_q, n_i = 40, 15
    df = pd.DataFrame({"user_id": np.repeat(np.arange(n_q), n_i), "item_id": np.tile(np.arange(n_i), n_q)})
    df["relevance"] = rng.integers(0, 3, len(df))
    df["feature"] = df["relevance"] + rng.normal(0, 1.0, len(df))
    return df


def test_evaluator_plugin_is_registered() -> None:
    from mlflow.models.evaluation.evaluator_registry import _model_evaluation_registry

    _model_evaluation_registry.register_entrypoints()
    assert "harness" in _model_evaluation_registry._registry


@pytest.mark.parametrize("use_model", [True, False])
def test_mlflow_evaluate_with_harness_evaluator(tmp_path: Path, use_model: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # the local store puts artifacts under ./mlruns
    mlflow.set_tracking_uri(f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}")
    data = _data()
    config = {"query_col": "user_id", "item_col": "item_id", "metrics": ["ndcg@5", "recall@[5,10]"]}
    try:
        with mlflow.start_run() as active:
            if use_model:
                info = mlflow.pyfunc.log_model(name="scorer", python_model=ScoreColumn(), pip_requirements=NO_INFERENCE)
                res = mlflow.models.evaluate(info.model_uri, data, targets="relevance",
                                             model_type="ranking", evaluators=["harness"],
                                             evaluator_config={"harness": config})
            else:
                res = mlflow.models.evaluate(data=data.assign(score=data["feature"] * 2.0),
                                             predictions="score", targets="relevance",
                                             model_type="ranking", evaluators="harness",
                                             evaluator_config=config)
        rows = data.rename(columns={"user_id": "query_id"}).assign(score=data["feature"] * 2.0)
        expected = ref.ranking_means(rows, ref.lists_from_run(rows), ["ndcg@5", "recall@10"])
        assert res.metrics["ndcg_at_5"] == pytest.approx(expected["ndcg@5"], abs=1e-12)
        assert res.metrics["recall_at_10"] == pytest.approx(expected["recall@10"], abs=1e-12)
        logged = mlflow.get_run(active.info.run_id).data.metrics
        assert logged["ndcg_at_5"] == pytest.approx(expected["ndcg@5"], abs=1e-12)
        artifacts = [a.path for a in mlflow.MlflowClient().list_artifacts(active.info.run_id)]
        assert "harness_per_query.json" in artifacts
    finally:
        mlflow.set_tracking_uri(None)


def test_binary_labels_and_probabilities_add_calibration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.metrics import brier_score_loss

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}")
    rng = np.random.default_rng(2)
    data = pd.DataFrame({"user_id": np.repeat(np.arange(30), 10), "item_id": np.tile(np.arange(10), 30)})
    data["p"] = rng.random(len(data))
    data["click"] = (rng.random(len(data)) < data["p"]).astype(int)
    with mlflow.start_run():
        res = mlflow.models.evaluate(data=data, predictions="p", targets="click", model_type="ranking",
                                     evaluators="harness",
                                     evaluator_config={"query_col": "user_id", "metrics": ["ndcg@5"]})
    assert res.metrics["calibration_brier"] == pytest.approx(brier_score_loss(data["click"], data["p"]), abs=1e-12)
    assert "calibration_ece" in res.metrics and "ndcg_at_5" in res.metrics



class Broken(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise KeyError("feature store down")


def test_a_failing_model_is_an_adapter_error_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.errors import AdapterError

    monkeypatch.chdir(tmp_path)
    mlflow.set_tracking_uri(f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}")
    try:
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="broken", python_model=Broken(), pip_requirements=NO_INFERENCE)
            with pytest.raises(AdapterError, match=r"model 'PyFuncModel' raised KeyError in predict\(\): "
                                                   r"'feature store down'"):
                mlflow.models.evaluate(info.model_uri, _data(), targets="relevance", model_type="ranking",
                                       evaluators="harness",
                                       evaluator_config={"query_col": "user_id", "item_col": "item_id"})
    finally:
        mlflow.set_tracking_uri(None)
