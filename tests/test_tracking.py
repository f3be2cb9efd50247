"""MLflow logging against a real `mlflow server`; outage handling and exactly-once sync."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import MlflowServer, small_config, write_config

runner = CliRunner()


def _results_dir(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def _runs_for(client: MlflowClient, harness_run_id: str):
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.`harness.run_id` = '{harness_run_id}'")


def test_unreachable_server_keeps_results_and_the_gate(tmp_path: Path, unreachable_uri: str) -> None:
    cfg = small_config(tmp_path, tracking={"uri": unreachable_uri})
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output  # the gate passed; the outage does not change that
    assert "not logged to MLflow" in result.stderr and "harness sync" in result.stderr
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    assert data["tracking"]["status"] == "pending"
    assert data["verdict"]["decision"] == "PASS"
    assert (_results_dir(tmp_path / "results") / "per_unit.parquet").is_file()


def test_run_is_logged_as_parent_and_children(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    cfg = small_config(tmp_path, tracking={"uri": mlflow_server.uri}, name="tracking-layout")
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    folder = _results_dir(tmp_path / "results")
    data = json.loads((folder / "results.json").read_text())
    assert data["tracking"]["status"] == "logged"
    ids = data["tracking"]["mlflow_run_ids"]

    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(ids["parent"])
    assert parent.data.tags["gate.verdict"] == "PASS"
    assert parent.data.tags["harness.run_id"] == data["run_id"]
    assert parent.data.tags["harness.dataset_fingerprint"] == data["dataset"]["fingerprint"]
    artifacts = {a.path for a in client.list_artifacts(ids["parent"])}
    assert {"results.json", "per_unit.parquet", "summary.md", "junit.xml"} <= artifacts
    assert client.get_experiment(parent.info.experiment_id).name == "tracking-layout"

    base = client.get_run(ids["popularity"])
    cand = client.get_run(ids["candidate"])
    assert base.data.tags["mlflow.parentRunId"] == ids["parent"]
    assert base.data.tags["harness.role"] == "baseline" and cand.data.tags["harness.role"] == "candidate"
    assert cand.data.tags["gate.verdict"] == "PASS"
    assert cand.data.tags["gate.ndcg_at_10"] == "PASS" and cand.data.tags["gate.recall_at_50"] == "PASS"
    assert cand.data.params["model.kind"] == "oracle" and cand.data.params["model.params.noise"] == "0.5"
    row = next(r for r in data["metrics"] if r["model"] == "candidate" and r["metric"] == "ndcg@10")
    assert cand.data.metrics["ndcg_at_10"] == pytest.approx(row["value"])
    assert cand.data.metrics["ndcg_at_10_ci_low"] == pytest.approx(row["ci_low"])
    assert cand.data.metrics["ndcg_at_10_ci_high"] == pytest.approx(row["ci_high"])
    comp = next(r for r in data["comparison"] if r["metric"] == "ndcg@10")
    assert cand.data.metrics["delta_ndcg_at_10"] == pytest.approx(comp["delta"])
    assert cand.data.metrics["delta_ndcg_at_10_p_adj"] == pytest.approx(comp["p_adjusted"])
    assert "delta_ndcg_at_10" not in base.data.metrics
    # metric-at-k curve: recall logged at every k = 1..50, equal to the cut-off metrics
    history = {m.step: m.value for m in client.get_metric_history(ids["candidate"], "recall")}
    assert sorted(history) == list(range(1, 51))
    assert history[10] == pytest.approx(cand.data.metrics["recall_at_10"])
    assert history[50] == pytest.approx(cand.data.metrics["recall_at_50"])
    assert "plots/ranking_curves.png" in {a.path for a in client.list_artifacts(ids["parent"], "plots")}


def test_server_killed_mid_run_then_sync_logs_exactly_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = MlflowServer(tmp_path / "srv")
    server.root.mkdir()
    server.start()
    import harness.tracking.log as tracking

    real_create = tracking._params

    calls = {"n": 0}

    def kill_after_parent(params):
        calls["n"] += 1
        if calls["n"] == 2:  # the parent run exists; the first child's params are next
            server.stop()
        return real_create(params)

    monkeypatch.setattr(tracking, "_params", kill_after_parent)
    cfg = small_config(tmp_path, tracking={"uri": server.uri})
    try:
        result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
        assert result.exit_code == 0, result.output
        folder = _results_dir(tmp_path / "results")
        data = json.loads((folder / "results.json").read_text())
        assert data["tracking"]["status"] == "pending"
        monkeypatch.setattr(tracking, "_params", real_create)

        server.start()  # same port, same store: the partial parent run is still there
        client = MlflowClient(server.uri)
        assert len(_runs_for(client, data["run_id"])) >= 1
        for _ in range(2):
            synced = runner.invoke(app, ["sync", str(tmp_path / "results")])
            assert synced.exit_code == 0, synced.output
        runs = _runs_for(client, data["run_id"])
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        assert len(parents) == 1 and len(children) == 2
        assert parents[0].data.tags["harness.logged"] == "complete"
        assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "logged"
        # even with the local status reset, a third sync finds the logged run by its tag
        data = json.loads((folder / "results.json").read_text())
        data["tracking"]["status"] = "pending"
        (folder / "results.json").write_text(json.dumps(data))
        assert runner.invoke(app, ["sync", str(tmp_path / "results")]).exit_code == 0
        assert len(_runs_for(client, data["run_id"])) == 3
    finally:
        server.stop()


def test_sync_reports_still_unreachable(tmp_path: Path, unreachable_uri: str) -> None:
    cfg = small_config(tmp_path, tracking={"uri": unreachable_uri})
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"]).exit_code == 0
    synced = runner.invoke(app, ["sync", str(tmp_path / "results")])
    assert synced.exit_code == 3 and "still pending" in synced.stdout


def test_default_local_store_needs_no_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, tracking={})
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"]).exit_code == 0
    assert (tmp_path / "mlflow.db").is_file()
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    assert data["tracking"]["status"] == "logged" and data["tracking"]["uri"].startswith("sqlite:")


def test_undefined_values_are_not_logged() -> None:
    from harness.tracking.log import _metric_entities

    names = [m.key for m in _metric_entities({"a": 1.0, "b": float("nan"), "c": None, "d": float("inf"), "e": 0})]
    assert names == ["a", "e"]
