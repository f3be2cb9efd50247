"""Registered-model aliases, prior-run baselines and promotion against a real server."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.errors import ConfigError, DataValidationError
from harness.tracking.registry import (ModelRef, load_run_per_unit, parse_models_uri, parse_runs_uri,
                                    promote, resolve_version)
from tests.conftest import NO_INFERENCE, MlflowServer, migrated_store, small_config, write_config


class Constant(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return [0.0] * len(model_input)


@pytest.mark.parametrize("uri, ref", [
    ("models:/ranker/3", ModelRef("ranker", "3", None)),
    ("models:/ranker@champion", ModelRef("ranker", None, "champion")),
])
def test_parse_models_uri(uri: str, ref: ModelRef) -> None:
    assert parse_models_uri(uri) == ref
    assert parse_models_uri(uri).uri == uri


@pytest.mark.parametrize("bad", ["models:/", "models:/a/b/c", "runs:/abc/model", "ranker@champion"])
def test_bad_model_uris(bad: str) -> None:
    with pytest.raises(ConfigError, match="registered-model URI"):
        parse_models_uri(bad)


def test_bad_run_uri() -> None:
    with pytest.raises(ConfigError, match="not a run URI"):
        parse_runs_uri("runs:/xyz")


def _register_versions(server: MlflowServer, name: str, n: int) -> None:
    mlflow.set_tracking_uri(server.uri)
    try:
        for _ in range(n):
            with mlflow.start_run():
                mlflow.pyfunc.log_model(name="m", python_model=Constant(), registered_model_name=name,
                                        pip_requirements=NO_INFERENCE)
    finally:
        mlflow.set_tracking_uri(None)


def test_alias_resolution_and_promotion(mlflow_server: MlflowServer) -> None:
    _register_versions(mlflow_server, "reg-ranker", 2)
    client = MlflowClient(mlflow_server.uri, registry_uri=mlflow_server.uri)
    client.set_registered_model_alias("reg-ranker", "champion", "1")
    pinned = resolve_version(parse_models_uri("models:/reg-ranker@champion"), mlflow_server.uri)
    assert pinned.version == "1"
    record = promote(parse_models_uri("models:/reg-ranker/2"), "champion", mlflow_server.uri)
    assert record == {"registered_model": "reg-ranker", "version": "2", "alias": "champion"}
    assert client.get_model_version_by_alias("reg-ranker", "champion").version == "2"
    with pytest.raises(ConfigError, match="cannot resolve"):
        resolve_version(parse_models_uri("models:/reg-ranker@nobody"), mlflow_server.uri)


def test_prior_run_baseline_reuses_per_unit_values(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    cfg = small_config(tmp_path, tracking={"uri": mlflow_server.uri}, name="prior-run")
    assert runner_invoke(write_config(tmp_path, cfg)) == 0
    (folder,) = list((tmp_path / "results").iterdir())
    data = json.loads((folder / "results.json").read_text())
    pop_run = data["tracking"]["mlflow_run_ids"]["popularity"]
    model, tables = load_run_per_unit(f"runs:/{pop_run}", mlflow_server.uri,
                                      fingerprint=data["dataset"]["fingerprint"], metrics=["ndcg@10"])
    assert model == "popularity" and list(tables) == ["ranking"]
    table = tables["ranking"]
    row = next(r for r in data["metrics"] if r["model"] == "popularity" and r["metric"] == "ndcg@10")
    assert len(table) == row["n_units"]
    assert table["ndcg@10"].mean() == pytest.approx(row["value"], abs=1e-12)
    with pytest.raises(DataValidationError, match="fingerprint"):
        load_run_per_unit(f"runs:/{pop_run}", mlflow_server.uri, fingerprint="other", metrics=["ndcg@10"])
    with pytest.raises(ConfigError, match="no per-unit values"):
        load_run_per_unit(f"runs:/{pop_run}", mlflow_server.uri,
                          fingerprint=data["dataset"]["fingerprint"], metrics=["map@7"])
    parent = data["tracking"]["mlflow_run_ids"]["parent"]
    with pytest.raises(ConfigError, match="pick a child run"):
        load_run_per_unit(f"runs:/{parent}", mlflow_server.uri,
                          fingerprint=data["dataset"]["fingerprint"], metrics=["ndcg@10"])


def runner_invoke(path: Path) -> int:
    result = CliRunner().invoke(app, ["run", str(path), "--no-progress"])
    return result.exit_code


def test_config_baseline_can_be_a_prior_run(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    first = small_config(tmp_path / "a", tracking={"uri": mlflow_server.uri}, name="prior-baseline")
    (tmp_path / "a").mkdir()
    assert runner_invoke(write_config(tmp_path / "a", first)) == 0
    (folder,) = list((tmp_path / "a" / "results").iterdir())
    data = json.loads((folder / "results.json").read_text())
    baseline_uri = f"runs:/{data['tracking']['mlflow_run_ids']['popularity']}"

    second = small_config(tmp_path / "b", tracking={"uri": mlflow_server.uri}, name="prior-baseline")
    del second["models"]["popularity"]
    second["compare"]["baseline"] = baseline_uri
    (tmp_path / "b").mkdir()
    assert runner_invoke(write_config(tmp_path / "b", second)) == 0
    (folder2,) = list((tmp_path / "b" / "results").iterdir())
    data2 = json.loads((folder2 / "results.json").read_text())
    # same data and seed: the reused baseline gives the very same paired deltas
    before = {r["metric"]: r["delta"] for r in data["comparison"]}
    after = {r["metric"]: r["delta"] for r in data2["comparison"]}
    assert data2["comparison"][0]["baseline"] == baseline_uri
    assert after == pytest.approx(before, abs=1e-12)
    assert data2["units"][baseline_uri]["reused_from"] == baseline_uri
    client = MlflowClient(mlflow_server.uri)
    child = client.get_run(data2["tracking"]["mlflow_run_ids"][baseline_uri])
    assert child.data.tags["harness.role"] == "baseline"
    assert child.data.tags["harness.reused_from"] == baseline_uri
    # validate checks the baseline run as run does: a parent run, other data, a metric it lacks
    parent = f"runs:/{data['tracking']['mlflow_run_ids']['parent']}"
    other_data = {**second, "dataset": {**second["dataset"], "n_users": second["dataset"]["n_users"] + 10}}
    new_metric = {**second, "evaluate": {"ranking": {"metrics": ["map@7"]}}, "gate": []}
    for cfg, message in (({**second, "compare": {**second["compare"], "baseline": parent}}, "pick a child run"),
                         (other_data, "was evaluated on dataset fingerprint"),
                         (new_metric, "has no per-unit values for ['map@7']")):
        result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path / "b", cfg))])
        assert result.exit_code == 2 and message in result.stderr, result.output


def test_promote_requires_a_registered_candidate(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["tracking"] = {"promote": {"registered_model": "ranker"}}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2
    assert "must be a registered model version" in result.stderr


class TableScores(mlflow.pyfunc.PythonModel):
    """Scores looked up in a (n_users, n_items) table shipped with the model."""

    def __init__(self, table):
        self.table = table

    def predict(self, context, model_input, params=None):
        return self.table[model_input["query_id"].to_numpy(), model_input["item_id"].to_numpy()]


def test_promotion_on_pass_only_and_stored_baseline_reuse(tmp_path: Path, monkeypatch) -> None:
    from harness.datasets import make_synthetic
    from harness.models.mlflow_pyfunc import global_tracking_uri

    monkeypatch.chdir(tmp_path)  # the local store keeps run artifacts under ./mlruns
    uri = f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}"
    cfg = small_config(tmp_path, tracking={"uri": uri, "promote": {"registered_model": "ranker",
                                                                   "alias": "champion"}})
    world = make_synthetic(n_users=300, n_items=200, dim=8, seed=cfg["seed"])
    weak = np.tile(np.arange(200, dtype=float) % 17, (300, 1))
    with global_tracking_uri(uri):
        for table in (weak, world.truth["true_scores"]):  # version 1 (weak), version 2 (ideal)
            with mlflow.start_run():
                mlflow.pyfunc.log_model(name="model", python_model=TableScores(table),
                                        registered_model_name="ranker", pip_requirements=NO_INFERENCE)
    client = MlflowClient(uri, registry_uri=uri)
    client.set_registered_model_alias("ranker", "champion", "1")
    del cfg["models"]["popularity"]
    cfg["models"]["candidate"] = {"kind": "mlflow", "params": {"uri": "models:/ranker/2"}}
    cfg["compare"]["baseline"] = "models:/ranker@champion"

    assert runner_invoke(write_config(tmp_path, cfg)) == 0  # PASS: version 2 is better
    (first_dir,) = list((tmp_path / "results").iterdir())
    first = json.loads((first_dir / "results.json").read_text())
    assert first["verdict"]["decision"] == "PASS"
    assert first["tracking"]["promoted"] == {"status": "promoted", "registered_model": "ranker",
                                             "version": "2", "alias": "champion"}
    assert str(client.get_model_version_by_alias("ranker", "champion").version) == "2"

    # champion is now version 2: the baseline's per-unit values are reused from the first
    # run's candidate child (same version, data and settings), and an identical candidate
    # is INCONCLUSIVE, so nothing is promoted
    assert runner_invoke(write_config(tmp_path, cfg)) == 1
    # run ids made within one second sort by their random suffix: take the new folder
    (second_dir,) = set((tmp_path / "results").iterdir()) - {first_dir}
    second = json.loads((second_dir / "results.json").read_text())
    baseline_units = second["units"]["models:/ranker@champion"]
    assert baseline_units["model_version_uri"] == "models:/ranker/2"
    assert baseline_units["reused_from"] == f"runs:/{first['tracking']['mlflow_run_ids']['candidate']}"
    assert second["verdict"]["decision"] == "INCONCLUSIVE"
    assert "promoted" not in second["tracking"]
    assert str(client.get_model_version_by_alias("ranker", "champion").version) == "2"
