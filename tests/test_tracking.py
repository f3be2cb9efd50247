"""MLflow logging against a real `mlflow server`; outage handling and exactly-once sync."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import MlflowServer, Outage, small_config, write_config

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
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlflow_server: MlflowServer) -> None:
    """The server goes away after the parent run is created (its port closed and every
    connection reset: :class:`~tests.conftest.Outage` in front of the live server): the
    run finishes, its folder says ``pending``; back on the same port and store, the
    partial parent is there, and ``harness sync`` (twice, then again with the local
    status reset) leaves one parent and two children."""
    server = Outage(mlflow_server.uri)
    server.up()
    import harness.tracking.log as tracking

    real_create = tracking._params

    calls = {"n": 0}

    def kill_after_parent(params):
        calls["n"] += 1
        if calls["n"] == 2:  # the parent run exists; the first child's params are next
            server.down()
        return real_create(params)

    monkeypatch.setattr(tracking, "_params", kill_after_parent)
    cfg = small_config(tmp_path, tracking={"uri": server.uri}, name="killed-mid-run")
    try:
        result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
        assert result.exit_code == 0, result.output
        folder = _results_dir(tmp_path / "results")
        data = json.loads((folder / "results.json").read_text())
        assert data["tracking"]["status"] == "pending"
        monkeypatch.setattr(tracking, "_params", real_create)

        server.up()  # same port, same store: the partial parent run is still there
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
        server.down()


def test_a_run_with_tracking_disabled_is_not_synced_unless_named(tmp_path: Path) -> None:
    """``tracking: {enabled: false}``: the folder says ``disabled`` (not ``pending``), the
    report does not offer an upload, and ``harness sync`` of the results root leaves it
    alone (an outage's sync uploaded every such run); named on its own, it is logged."""
    from tests.conftest import migrated_store

    cfg = small_config(tmp_path, tracking={"enabled": False})
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"]).exit_code in (0, 1)
    folder = _results_dir(tmp_path / "results")
    assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "disabled"
    assert "harness sync" not in (folder / "report.html").read_text()
    uri = f"sqlite:///{migrated_store(tmp_path / 'store.db')}"
    synced = runner.invoke(app, ["sync", str(tmp_path / "results"), "--tracking-uri", uri])
    assert synced.exit_code == 0 and f"{folder.name}: tracking disabled in its config, not logged" in synced.stdout
    assert json.loads((folder / "results.json").read_text())["tracking"]["status"] == "disabled"
    assert MlflowClient(uri).search_experiments(filter_string=f"name = '{cfg['name']}'") == []
    synced = runner.invoke(app, ["sync", str(folder), "--tracking-uri", uri])
    assert synced.exit_code == 0 and "logged to" in synced.stdout, synced.output
    data = json.loads((folder / "results.json").read_text())
    assert data["tracking"]["status"] == "logged" and len(_runs_for(MlflowClient(uri), data["run_id"])) >= 1


def test_sync_reports_still_unreachable(tmp_path: Path, unreachable_uri: str) -> None:
    cfg = small_config(tmp_path, tracking={"uri": unreachable_uri})
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"]).exit_code == 0
    synced = runner.invoke(app, ["sync", str(tmp_path / "results")])
    assert synced.exit_code == 3 and "still pending" in synced.stdout


def test_default_store_is_one_per_user_wherever_harness_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No tracking URI anywhere: the store under $HARNESS_HOME, the one `harness store` (and
    so `make ui`) names; nothing is written to the working directory."""
    home, work = tmp_path / "home", tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HARNESS_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, tracking={})
    announced: list[logging.LogRecord] = []  # MLflow's INFO lines as it creates the new store's tables
    handler = logging.Handler()
    handler.emit = announced.append  # type: ignore[method-assign]
    logging.getLogger("mlflow.store.db.utils").addHandler(handler)
    try:
        assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"]).exit_code == 0
    finally:
        logging.getLogger("mlflow.store.db.utils").removeHandler(handler)
    assert [r.getMessage() for r in announced if r.levelno < logging.WARNING] == []
    store = runner.invoke(app, ["store"]).stdout.strip()
    assert store == f"sqlite:///{home / 'mlflow.db'}" and (home / "mlflow.db").is_file()
    assert list(work.iterdir()) == []
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    assert data["tracking"]["status"] == "logged" and data["tracking"]["uri"] == store
    client = MlflowClient(store)
    run = client.get_run(data["tracking"]["mlflow_run_ids"]["parent"])
    assert run.info.artifact_uri.startswith(str(home / "mlartifacts"))
    assert {"report.html", "results.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_compare_reads_run_ids_from_the_default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run ids logged to the harness's store ($HARNESS_HOME) are found there without
    --tracking-uri (decompose reads them through the same loader), and no MLflow store is
    made in the working directory (it was MLflow's ./mlflow.db: "run not found")."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, tracking={})
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"]).exit_code == 0
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    parent = data["tracking"]["mlflow_run_ids"]["parent"]
    compared = runner.invoke(app, ["compare", parent, f"runs:/{parent}", "--baseline-model", "popularity",
                                   "--candidate-model", "candidate", "--n-resamples", "100"])
    assert compared.exit_code in (0, 1) and "GATE:" in compared.stdout, compared.output
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("home", ["a-file", "under-a-file/home"])
def test_an_unusable_default_store_leaves_the_results_pending_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                     home: str) -> None:
    """$HARNESS_HOME that cannot be a folder: the results folder is written whole, then
    logging fails as a server outage does (pending, one warning naming the folder, exit
    code of the gate), and ``harness sync`` uploads it once the store is usable."""
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "under-a-file").write_text("not a folder")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = small_config(tmp_path, tracking={})
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert f"MLflow store folder {tmp_path / home} cannot be created" in result.output
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    assert data["tracking"]["status"] == "pending"
    (tmp_path / home.split("/")[0]).unlink()  # the file in the way removed
    assert runner.invoke(app, ["sync", str(tmp_path / "results")]).exit_code == 0
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    assert data["tracking"]["status"] == "logged" and (tmp_path / home / "mlflow.db").is_file()


def test_parent_run_shows_the_verdict_and_headline_numbers(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    cfg = small_config(tmp_path, tracking={"uri": mlflow_server.uri}, name="first-glance")
    assert runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"]).exit_code == 0
    data = json.loads((_results_dir(tmp_path / "results") / "results.json").read_text())
    tracking = data["tracking"]
    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(tracking["mlflow_run_ids"]["parent"])
    assert parent.info.run_name == "PASS · first-glance"
    value = next(r["value"] for r in data["metrics"] if r["model"] == "candidate" and r["metric"] == "ndcg@10")
    delta = next(r["delta"] for r in data["comparison"] if r["metric"] == "ndcg@10")
    # only the primary criterion (ndcg@10) is a headline; recall@50 is a guardrail
    assert parent.data.metrics == {"gate_verdict": 1.0, "ndcg_at_10": value, "delta_ndcg_at_10": delta}
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.harness"])
    assert view["selectedColumns"][:4] == ["tags.`gate.verdict`", "metrics.`gate_verdict`",
                                           "metrics.`ndcg_at_10`", "metrics.`delta_ndcg_at_10`"]
    assert tracking["ui"]["experiment"] == (f"{mlflow_server.uri}/#/experiments/{experiment.experiment_id}/runs"
                                            "?viewStateShareKey=harness&workflowType=machine_learning")
    # the logged report links its runs, as the local copy does
    logged = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path)))
    assert logged.read_text() == (_results_dir(tmp_path / "results") / "report.html").read_text()
    assert tracking["ui"]["parent"].replace("&", "&amp;") in logged.read_text()


def test_headline_metrics_prefix_each_of_several_candidates() -> None:
    from harness.tracking.log import headline_metrics

    data = {"verdict": {"decision": "FAIL", "criteria": [
                {"candidate": c, "metric": "ndcg@10", "role": "primary"} for c in ("a", "b")]
                + [{"candidate": "a", "metric": "recall@50", "role": "guardrail"}]},
            "metrics": [{"model": "a", "metric": "ndcg@10", "value": 0.3}, {"model": "b", "metric": "ndcg@10",
                                                                            "value": 0.2}],
            "comparison": [{"candidate": "a", "metric": "ndcg@10", "delta": 0.01},
                           {"candidate": "b", "metric": "ndcg@10", "delta": -0.09}]}
    assert headline_metrics(data) == {"gate_verdict": -1.0, "a.ndcg_at_10": 0.3, "a.delta_ndcg_at_10": 0.01,
                                      "b.ndcg_at_10": 0.2, "b.delta_ndcg_at_10": -0.09}


def test_undefined_values_are_not_logged() -> None:
    from harness.tracking.log import _metric_entities

    names = [m.key for m in _metric_entities({"a": 1.0, "b": float("nan"), "c": None, "d": float("inf"), "e": 0})]
    assert names == ["a", "e"]
