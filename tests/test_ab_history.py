"""Launch history: offline deltas next to online lifts (``harness ab`` with a ``launch``
section, then ``harness history``), Spearman and sign agreement against scipy, plain
formulas and a coverage simulation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.metrics.launch_history import offline_online_agreement
from harness.results.folder import EvalResult, write_results
from tests.conftest import migrated_store


def test_agreement_against_scipy_and_plain_formulas() -> None:
    d = np.array([0.01, -0.02, 0.03, 0.015, -0.005, 0.02, 0.0])
    y = np.array([0.5, -0.3, 0.2, 0.1, 0.2, 0.4, -0.1])
    a = offline_online_agreement(d, y, confidence=0.9)
    assert a.spearman == pytest.approx(stats.spearmanr(d, y).statistic)
    z = stats.norm.ppf(0.95) * np.sqrt(1.06 / (7 - 3))
    assert (a.spearman_ci_low, a.spearman_ci_high) == pytest.approx(
        (np.tanh(np.arctanh(a.spearman) - z), np.tanh(np.arctanh(a.spearman) + z)))
    signed = [(di > 0) == (yi > 0) for di, yi in zip(d, y) if di != 0 and yi != 0]  # plain loop
    assert a.n_signed == len(signed) == 6 and a.sign_agreement == pytest.approx(sum(signed) / 6)
    k, n, q = sum(signed), 6, stats.norm.ppf(0.95)
    centre = (k / n + q * q / (2 * n)) / (1 + q * q / n)
    half = q * np.sqrt(k / n * (1 - k / n) / n + q * q / (4 * n * n)) / (1 + q * q / n)
    assert (a.sign_ci_low, a.sign_ci_high) == pytest.approx((centre - half, centre + half))
    few = offline_online_agreement(np.array([0.1, 0.2]), np.array([0.3, 0.1]))
    assert np.isnan(few.spearman) and few.n == 2


def test_fisher_z_interval_covers_the_population_spearman() -> None:
    """2000 histories of 30 launches, bivariate normal with rho = 0.5: population Spearman
    (6 / pi) asin(rho / 2); coverage 95% within 3 MC standard errors (1.5%)."""
    rng = np.random.default_rng(21)
    truth = 6 / np.pi * np.arcsin(0.25)
    cov = [[1, 0.5], [0.5, 1]]
    hits = 0
    for _ in range(2000):
        x = rng.multivariate_normal([0, 0], cov, 30)
        a = offline_online_agreement(x[:, 0], x[:, 1])
        hits += a.spearman_ci_low <= truth <= a.spearman_ci_high
    assert hits / 2000 == pytest.approx(0.95, abs=3 * np.sqrt(0.95 * 0.05 / 2000))


def _offline(root: Path, k: int, ndcg_delta: float, **more: float) -> Path:
    """A ``harness run`` results folder whose candidate improved nDCG@10 by ``ndcg_delta``
    (and moved each metric of ``more`` by its value)."""
    rows = [{"metric": m, "baseline": "prod", "candidate": "cand", "delta": d, "relative_delta": d / 0.3,
             "ci_low": d - 0.01, "ci_high": d + 0.01} for m, d in {"ndcg@10": ndcg_delta, **more}.items()]
    result = EvalResult(run_id=f"2026010{k}T000000Z-off{k}", created_at=f"2026-01-0{k}T00:00:00+00:00",
                        config={"name": f"offline-{k}"}, config_hash="x", dataset={"name": "d", "fingerprint": "f"},
                        metrics=[], per_unit=pd.DataFrame(columns=["family", "model", "unit_id", "metric", "value"]),
                        comparison=rows, verdict={"decision": "PASS"})
    return write_results(result, root / "offline")


def test_history_puts_offline_deltas_beside_online_lifts(tmp_path: Path) -> None:
    rng = np.random.default_rng(22)
    runner = CliRunner()
    deltas = [0.004, 0.010, -0.002, 0.015, 0.007, 0.001]
    for k, delta in enumerate(deltas, start=1):
        n = 4000
        treated = rng.random(n) < 0.5
        y = rng.gamma(2, 5, n) * (1 + treated * 4 * delta)  # the online lift follows the offline delta
        pd.DataFrame({"variant": np.where(treated, "B", "A"), "revenue": y}).to_parquet(tmp_path / f"e{k}.parquet")
        cfg = {"name": f"launch-{k}", "variants": {"control": "A", "treatments": ["B"]},
               "metrics": {"revenue": {"mean": "revenue"}},
               "launch": {"offline_results": str(_offline(tmp_path, k, delta))},
               "tracking": {"enabled": False}, "output": str(tmp_path / "online")}
        (tmp_path / f"ab{k}.yaml").write_text(yaml.safe_dump(cfg))
        res = runner.invoke(app, ["ab", str(tmp_path / f"e{k}.parquet"), "--config", str(tmp_path / f"ab{k}.yaml"),
                                  "--no-plots"])
        assert res.exit_code == 0, res.output
    # a damaged results folder among the launches: left out, counted and named, not skipped silently
    (tmp_path / "online" / "broken").mkdir()
    (tmp_path / "online" / "broken" / "results.json").write_text("{not json")
    res = runner.invoke(app, ["history", str(tmp_path / "online")])
    assert res.exit_code == 0, res.output
    assert "1 results folder(s) under" in res.stderr and "broken" in res.stderr
    # written beside the run folders, not among them (RESULTS/history)
    hist = json.loads((tmp_path / "online" / "history" / "history.json").read_text())
    launches = pd.DataFrame(hist["launches"])
    assert list(launches["offline:ndcg@10"]) == deltas  # in launch order
    (pair,) = hist["agreement"]
    assert (pair["offline_metric"], pair["online_metric"], pair["launches"]) == ("ndcg@10", "revenue", 6)
    assert pair["spearman"] == pytest.approx(stats.spearmanr(launches["offline:ndcg@10"],
                                                             launches["online:revenue"]).statistic)
    assert (tmp_path / "online" / "history" / "history.png").is_file()
    assert not (tmp_path / "online" / "history.json").exists()
    empty = runner.invoke(app, ["history", str(tmp_path / "offline")])
    assert empty.exit_code == 2 and "no A/B results with a launch section" in empty.output
    (tmp_path / "a-file").write_text("")  # --output under a file: one line, as every command (was a traceback)
    under = runner.invoke(app, ["history", str(tmp_path / "online"), "--output", str(tmp_path / "a-file" / "h")])
    assert under.exit_code == 2 and "a-file is a file, not a folder; pass --output a folder you can write" in \
        under.stderr and "Traceback" not in under.output


def test_agreement_reads_each_metric_in_its_better_direction(tmp_path: Path) -> None:
    """Offline ECE falls (better) as the online lift rises, over six launches: agreement 1
    and Spearman +1 once ECE is read as lower-is-better; a metric the online side gates
    as `lower` (a latency) is read that way too. The table keeps the raw deltas."""
    rng = np.random.default_rng(3)
    runner = CliRunner()
    lifts = [0.01, 0.03, -0.02, 0.05, 0.02, -0.01]
    for k, lift in enumerate(lifts, start=1):
        n = 4000
        treated = rng.random(n) < 0.5
        y = rng.gamma(2, 5, n) * (1 + treated * 4 * lift)
        latency = rng.gamma(2, 50, n) * (1 - treated * 2 * lift)  # a better candidate is faster
        pd.DataFrame({"variant": np.where(treated, "B", "A"), "revenue": y, "latency": latency}).to_parquet(
            tmp_path / f"e{k}.parquet")
        cfg = {"name": f"launch-{k}", "variants": {"control": "A", "treatments": ["B"]},
               "metrics": {"revenue": {"mean": "revenue"}, "latency": {"mean": "latency"}},
               "gate": [{"metric": "latency", "role": "guardrail", "direction": "lower", "max_regression": 100.0}],
               "launch": {"offline_results": str(_offline(tmp_path, k, lift, ece=-lift / 10))},
               "tracking": {"enabled": False}, "output": str(tmp_path / "online")}
        (tmp_path / f"ab{k}.yaml").write_text(yaml.safe_dump(cfg))
        res = runner.invoke(app, ["ab", str(tmp_path / f"e{k}.parquet"), "--config", str(tmp_path / f"ab{k}.yaml"),
                                  "--no-plots"])
        assert res.exit_code in (0, 1), res.output
    assert runner.invoke(app, ["history", str(tmp_path / "online")]).exit_code == 0
    hist = json.loads((tmp_path / "online" / "history" / "history.json").read_text())
    pairs = {(p["offline_metric"], p["online_metric"]): p for p in hist["agreement"]}
    ece = pairs[("ece", "revenue")]
    assert (ece["offline_better"], ece["online_better"]) == ("lower", "higher")
    assert ece["sign_agreement"] == 1.0 and ece["spearman"] == pytest.approx(1.0)
    latency = pairs[("ndcg@10", "latency")]
    assert latency["online_better"] == "lower" and latency["sign_agreement"] == 1.0
    assert [r["offline:ece"] for r in hist["launches"]] == pytest.approx([-x / 10 for x in lifts])  # raw deltas
    assert not any(k.startswith("better:") for k in hist["launches"][0])


def test_a_launch_naming_a_missing_offline_run_is_exit_2(tmp_path: Path) -> None:
    pd.DataFrame({"variant": ["A", "B"] * 10, "revenue": np.arange(20.0)}).to_parquet(tmp_path / "e.parquet")
    cfg = {"name": "x", "variants": {"control": "A", "treatments": ["B"]}, "metrics": {"revenue": {"mean": "revenue"}},
           "launch": {"offline_results": str(tmp_path / "nope")}, "tracking": {"enabled": False},
           "output": str(tmp_path / "out")}
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "e.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert res.exit_code == 2 and "nope" in res.output and "Traceback" not in res.output
    # an A/B folder is not an offline run: its "deltas" would be another test's online lifts
    del cfg["launch"]
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    assert CliRunner().invoke(app, ["ab", str(tmp_path / "e.parquet"), "--config", str(tmp_path / "ab.yaml")]
                              ).exit_code in (0, 1)
    (online,) = (tmp_path / "out").iterdir()
    cfg["launch"] = {"offline_results": str(online)}
    cfg["output"] = str(tmp_path / "out2")
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "e.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert res.exit_code == 2 and "is an A/B test's results folder; name the offline `harness run` folder" in \
        res.stderr and not (tmp_path / "out2").exists()
    # an offline run with two candidates: say which to set (it said "None is not one candidate")
    two = _offline(tmp_path, 1, 0.01)
    data = json.loads((two / "results.json").read_text())
    data["comparison"].append({**data["comparison"][0], "candidate": "other"})
    (two / "results.json").write_text(json.dumps(data))
    cfg["launch"] = {"offline_results": str(two)}
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "e.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert res.exit_code == 2 and "compared 2 candidates; set launch.candidate to one of" in res.stderr, res.output


def test_a_launch_is_logged_to_mlflow_with_its_offline_deltas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{migrated_store(tmp_path / 'h.db')}"
    rng = np.random.default_rng(23)
    pd.DataFrame({"variant": np.where(rng.random(400) < 0.5, "B", "A"), "revenue": rng.gamma(2, 5, 400)}).to_parquet(
        tmp_path / "e.parquet")
    cfg = {"name": "launch-mlflow", "variants": {"control": "A", "treatments": ["B"]},
           "metrics": {"revenue": {"mean": "revenue"}}, "launch": {"offline_results": str(_offline(tmp_path, 1, 0.012))},
           "tracking": {"enabled": True, "uri": uri}, "output": str(tmp_path / "online")}
    (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(app, ["ab", str(tmp_path / "e.parquet"), "--config", str(tmp_path / "ab.yaml")])
    assert res.exit_code == 0, res.output
    (folder,) = (tmp_path / "online").glob("2*")
    ids = json.loads((folder / "results.json").read_text())["tracking"]["mlflow_run_ids"]
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(ids["parent"]).data.tags["harness.offline_run_id"] == "20260101T000000Z-off1"
    assert client.get_run(ids["B"]).data.metrics["offline_delta_ndcg_at_10"] == pytest.approx(0.012)
    assert "offline_delta_ndcg_at_10" not in client.get_run(ids["A"]).data.metrics


def test_history_reads_the_launches_logged_to_mlflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Launches logged to the default store ($HARNESS_HOME, each in its own experiment) give
    the history of their results folders; --experiment narrows it; an unknown one is exit 2."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.setenv("HARNESS_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(24)
    runner = CliRunner()
    deltas = [0.004, 0.010, -0.002, 0.015]
    for k, delta in enumerate(deltas, start=1):
        treated = rng.random(3000) < 0.5
        y = rng.gamma(2, 5, 3000) * (1 + treated * 4 * delta)
        pd.DataFrame({"variant": np.where(treated, "B", "A"), "revenue": y}).to_parquet(tmp_path / f"e{k}.parquet")
        cfg = {"name": f"launch-{k}", "variants": {"control": "A", "treatments": ["B"]},
               "metrics": {"revenue": {"mean": "revenue"}},
               "launch": {"offline_results": str(_offline(tmp_path, k, delta))}, "output": str(tmp_path / "online")}
        (tmp_path / f"ab{k}.yaml").write_text(yaml.safe_dump(cfg))
        res = runner.invoke(app, ["ab", str(tmp_path / f"e{k}.parquet"), "--config", str(tmp_path / f"ab{k}.yaml"),
                                  "--no-plots"])
        assert res.exit_code == 0 and "logged to MLflow" in res.output, res.output
    assert runner.invoke(app, ["history", str(tmp_path / "online")]).exit_code == 0
    from_folders = json.loads((tmp_path / "online" / "history" / "history.json").read_text())
    res = runner.invoke(app, ["history", "--mlflow"])
    assert res.exit_code == 0, res.output
    from_store = json.loads((tmp_path / "history" / "history.json").read_text())
    assert from_store == from_folders  # same launches, same order, same numbers
    assert [r["offline:ndcg@10"] for r in from_store["launches"]] == deltas
    uri = f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"
    res = runner.invoke(app, ["history", "--tracking-uri", uri, "--experiment", "launch-2", "--experiment",
                              "launch-4", "-o", str(tmp_path / "two")])
    assert res.exit_code == 0, res.output
    two = json.loads((tmp_path / "two" / "history.json").read_text())
    assert [r["launch"] for r in two["launches"]] == ["launch-2", "launch-4"]
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(tracking_uri=uri).search_runs(
        [MlflowClient(tracking_uri=uri).get_experiment_by_name("launch-2").experiment_id],
        filter_string="tags.`harness.model` = 'B'")
    lift = next(r for r in from_store["launches"] if r["launch"] == "launch-2")["online:revenue"]
    assert run.data.metrics["online_lift_revenue"] == pytest.approx(lift)
    bad = runner.invoke(app, ["history", "--experiment", "nope"])
    assert bad.exit_code == 2 and "experiment(s) ['nope'] are not in the MLflow store" in bad.output
    both = runner.invoke(app, ["history", str(tmp_path / "online"), "--mlflow"])
    assert both.exit_code == 2 and "not both" in both.output


def test_a_metric_in_some_launches_only_keeps_its_direction() -> None:
    """ECE in one of two launches: read lower-is-better (it was "mixed", the launch without
    it counted as higher), and agreement over the launch that has it."""
    from harness.apps.history import launch_history

    def record(k: int, offline: dict, lift: float) -> dict:
        return {"config": {"name": f"l{k}"}, "run_id": f"r{k}", "created_at": f"2026-01-0{k}T00:00:00+00:00",
                "verdict": {"decision": "PASS"},
                "ab": {"launch": {"treatment": "B", "offline_run_id": f"o{k}", "offline_created_at": None,
                                  "offline_deltas": offline}},
                "comparison": [{"candidate": "B", "metric": "ctr", "delta": lift, "relative_delta": lift}]}

    hist = launch_history([record(1, {"ndcg@10": 0.02, "ece": -0.01}, 0.03), record(2, {"ndcg@10": -0.01}, -0.02)])
    pairs = hist.agreement.set_index("offline_metric")
    assert pairs.loc["ece", "offline_better"] == "lower" and pairs.loc["ndcg@10", "offline_better"] == "higher"
    assert pairs.loc["ece", "launches"] == 1 and pairs.loc["ece", "sign_agreement"] == 1.0
    assert pairs.loc["ndcg@10", "sign_agreement"] == 1.0
