"""MLflowPyfunc: log_model -> registry -> load by models:/ and runs:/ URIs, on a local store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient

from harness.errors import AdapterError, ConfigError
from harness.models.mlflow_pyfunc import MLflowPyfunc, check_model_uri, global_tracking_uri
from tests.conftest import NO_INFERENCE, migrated_store


class Affinity(mlflow.pyfunc.PythonModel):
    """score = ((7 * user + 3 * item) mod 11) / 10, NaN for user 13 (to test bad output)."""

    def predict(self, context, model_input, params=None):
        u = model_input["user_id"].to_numpy()
        i = model_input["item_id"].to_numpy()
        out = ((7 * u + 3 * i) % 11) / 10.0
        return np.where(u == 13, np.nan, out)


def expected_score(u: np.ndarray, i: np.ndarray) -> np.ndarray:
    return ((7 * u + 3 * i) % 11) / 10.0


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A local sqlite tracking store in tmp with one registered version, alias 'champion'."""
    root = tmp_path_factory.mktemp("mlflow-adapter")
    uri = f"sqlite:///{migrated_store(root / 'mlflow.db')}"
    example = pd.DataFrame({"user_id": np.array([0, 1], dtype=np.int64), "item_id": np.array([2, 3], dtype=np.int64)})
    with global_tracking_uri(uri):
        exp = mlflow.create_experiment("adapters", artifact_location=(root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp) as run:
            info = mlflow.pyfunc.log_model(name="model", python_model=Affinity(),
                                           signature=infer_signature(example, np.zeros(2)),
                                           registered_model_name="affinity", pip_requirements=NO_INFERENCE)
        MlflowClient(uri).set_registered_model_alias("affinity", "champion", "1")
    return uri, run.info.run_id, info


def test_round_trip_through_each_uri_form(store) -> None:
    uri, run_id, _ = store
    pairs = pd.DataFrame({"query_id": np.repeat(np.arange(5), 4), "item_id": np.tile(np.arange(4), 5)})
    want = expected_score(pairs["query_id"].to_numpy(), pairs["item_id"].to_numpy())
    before = (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), os.environ.get("MLFLOW_TRACKING_URI"),
              os.environ.get("MLFLOW_REGISTRY_URI"))
    for model_uri in ("models:/affinity/1", "models:/affinity@champion", f"runs:/{run_id}/model"):
        model = MLflowPyfunc(model_uri, tracking_uri=uri, query_col="user_id", batch_size=7)
        np.testing.assert_allclose(model.predict(pairs), want)
        np.testing.assert_allclose(model.predict_proba(pairs), want)
    after = (mlflow.get_tracking_uri(), mlflow.get_registry_uri(), os.environ.get("MLFLOW_TRACKING_URI"),
             os.environ.get("MLFLOW_REGISTRY_URI"))
    assert after == before  # the adapter leaves MLflow's global settings alone
    # whole-catalogue retrieval, seen items excluded, vs a plain reference
    model.fit(pd.DataFrame({"user_id": [0, 2], "item_id": [1, 3]}), n_users=5, n_items=4)
    out = model.retrieve(np.arange(5), 3)
    for q in range(5):
        ref = sorted((-expected_score(q, i), i) for i in range(4) if (q, i) not in {(0, 1), (2, 3)})[:3]
        assert list(out.items[q]) == [i for _, i in ref]


def test_input_schema_is_checked_at_load(store) -> None:
    uri, _, _ = store
    with pytest.raises(ConfigError, match=r"requires column\(s\) \['user_id'\].*sends \['query_id', 'item_id'\]"):
        MLflowPyfunc("models:/affinity/1", tracking_uri=uri)


def test_bad_outputs_name_model_and_batch(store) -> None:
    uri, _, _ = store
    model = MLflowPyfunc("models:/affinity@champion", tracking_uri=uri, query_col="user_id", batch_size=10)
    pairs = pd.DataFrame({"query_id": np.repeat([12, 13], 10), "item_id": np.tile(np.arange(10), 2)})
    with pytest.raises(AdapterError, match=r"MLflowPyfunc\(models:/affinity@champion\), batch 1 \(pair rows "
                                           r"10\.\.19\): 10 NaN or infinite scores \(e\.g\. 13"):
        model.predict(pairs)


@pytest.mark.parametrize("bad", ["models:/", "models:/x/y/z", "runs:/abc", "s3://bucket/model", ""])
def test_bad_uris(bad: str) -> None:
    with pytest.raises(ConfigError, match="not a model URI|non-empty"):
        check_model_uri(bad)


def test_unknown_model_is_a_config_error(store) -> None:
    uri, _, _ = store
    with pytest.raises(ConfigError, match=r"cannot load the model"):
        MLflowPyfunc("models:/affinity@nobody", tracking_uri=uri)


class Catalogue(mlflow.pyfunc.PythonModel):
    """A registered 'production' model: score = item popularity rank proxy (item id mod 17)."""

    def predict(self, context, model_input, params=None):
        return (model_input["item_id"].to_numpy() % 17).astype(float)


def test_registered_model_baseline_runs_through_the_runner(tmp_path: Path, monkeypatch) -> None:
    from harness.spec.config import parse_config
    from harness.apps.run import load_dataset, run
    from tests.conftest import small_config

    monkeypatch.chdir(tmp_path)  # the local store keeps run artifacts under ./mlruns
    uri = f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}"
    with global_tracking_uri(uri):
        with mlflow.start_run():
            mlflow.pyfunc.log_model(name="model", python_model=Catalogue(), registered_model_name="prod-ranker",
                                    pip_requirements=NO_INFERENCE)
        MlflowClient(uri).set_registered_model_alias("prod-ranker", "champion", "1")
    cfg = small_config(tmp_path, tracking={"uri": uri, "enabled": False})
    cfg["compare"]["baseline"] = "models:/prod-ranker@champion"
    del cfg["models"]["popularity"]
    outcome = run(parse_config(cfg), progress=False)
    data = json.loads((outcome.results_dir / "results.json").read_text())
    got = {r["metric"]: r["value"] for r in data["metrics"] if r["model"] == "models:/prod-ranker@champion"}
    # reference: the same scores for every unseen (user, item), evaluated directly
    ds = load_dataset(parse_config(cfg))
    q, i = np.nonzero(np.ones((ds.n_users, ds.n_items), dtype=bool))
    frame = pd.DataFrame({"query_id": q, "item_id": i, "score": (i % 17).astype(float)})
    seen = pd.MultiIndex.from_frame(ds.train[["user_id", "item_id"]])
    frame = frame[~pd.MultiIndex.from_arrays([frame.query_id, frame.item_id]).isin(seen)]
    frame = frame[frame.query_id.isin(ds.query_ids)]
    from tests import reference as ref

    want = ref.ranking_means(ds.qrels, ref.lists_from_run(frame), ["ndcg@10", "recall@10", "recall@50"])
    assert got == pytest.approx(want, abs=1e-12)
    assert data["units"]["models:/prod-ranker@champion"]["model_version_uri"] == "models:/prod-ranker/1"
