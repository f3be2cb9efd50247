"""evaluate.off_policy inside a run: estimates against plain formulas and the exact truth,
paired comparisons, the low-ESS gate cap, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.spec.config import parse_config
from tests.conftest import small_config, write_config


def _config(tmp_path: Path, **off_policy) -> dict:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 20000, "temperature": 0.5}, **off_policy}
    return cfg


def _run(tmp_path: Path, cfg: dict) -> tuple[int, dict, Path]:
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list((tmp_path / "results").iterdir())
    return result.exit_code, json.loads((folder / "results.json").read_text()), folder


def test_estimates_equal_plain_formulas_and_cover_the_truth(tmp_path: Path) -> None:
    from harness.datasets.synthetic_logs import make_logged_feedback
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset

    cfg = _config(tmp_path, estimators=["ips", "snips", "dr"], reward_model="logistic", epsilon=0.2)
    _, data, folder = _run(tmp_path, cfg)
    values = {(r["model"], r["metric"]): r for r in data["metrics"]}
    # independent reconstruction: the same logs, the candidate's top item per user
    config = parse_config(cfg)
    dataset = load_dataset(config)
    logs = make_logged_feedback(dataset, n_rounds=20000, temperature=0.5, seed=config.seed + 2)
    fb = logs.feedback
    for name in ("popularity", "candidate"):
        spec = config.models[name]
        model = build_model(name, spec.kind, dict(spec.params), dataset, config.seed)
        model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
        top = model.retrieve(np.arange(dataset.n_users), 1).items[:, 0]
        pi_e = 0.8 * (top[fb.context_id] == fb.action) + 0.2 / fb.n_actions
        w = pi_e / fb.pscore
        assert values[(name, "ips")]["value"] == pytest.approx(np.mean(w * fb.reward), abs=1e-12)
        assert values[(name, "snips")]["value"] == pytest.approx(np.sum(w * fb.reward) / np.sum(w), abs=1e-12)
        truth = np.mean(0.8 * logs.click_prob[np.arange(dataset.n_users), top] + 0.2 * logs.click_prob.mean(axis=1))
        assert data["off_policy"]["true_values"][name] == pytest.approx(truth, abs=1e-12)
        for est in ("ips", "snips", "dr"):  # seeded: the truth lies inside each 95% interval
            row = values[(name, est)]
            assert row["ci_low"] <= truth <= row["ci_high"], (name, est, row, truth)
    # per-row units are the influence values behind each estimate
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    ips_rows = per_unit[(per_unit.model == "candidate") & (per_unit.metric == "ips")]
    assert len(ips_rows) == 20000 and (ips_rows.family == "off_policy").all()
    assert sorted(ips_rows.unit_id.astype(int)) == list(range(20000))
    assert ips_rows.value.mean() == pytest.approx(values[("candidate", "ips")]["value"], abs=1e-12)
    diag = data["off_policy"]["estimates"]["candidate"][0]
    assert {"ess", "max_weight", "gate_cap"} <= set(diag)


def test_gate_passes_with_overlap_and_is_inconclusive_without(tmp_path: Path) -> None:
    criterion = {"metric": "snips", "role": "primary", "direction": "higher"}
    wide = _config(tmp_path / "wide", estimators=["snips"], epsilon=0.5, min_ess=50, min_ess_ratio=0.001)
    wide["evaluate"]["off_policy"]["synthetic"]["temperature"] = 3.0  # a logging policy that explores widely
    wide["gate"] = [criterion]
    (tmp_path / "wide").mkdir()
    code, data, _ = _run(tmp_path / "wide", wide)
    assert code == 0 and data["verdict"]["decision"] == "PASS"
    narrow = _config(tmp_path / "narrow", estimators=["snips"], epsilon=0.0, min_ess=5000)
    narrow["gate"] = [criterion]
    (tmp_path / "narrow").mkdir()
    code, data, _ = _run(tmp_path / "narrow", narrow)
    assert code == 1 and data["verdict"]["decision"] == "INCONCLUSIVE"
    assert "too little overlap" in data["verdict"]["reasons"][0]
    assert "effective sample size" in data["verdict"]["reasons"][0]


@pytest.mark.parametrize("off_policy, message", [
    ({"synthetic": {"n_rounds": 100}, "feedback": "x.parquet"}, "exactly one of 'feedback'"),
    ({}, "exactly one of 'feedback'"),
    ({"synthetic": {}, "estimators": ["dr"]}, "need a reward_model"),
    ({"synthetic": {}, "estimators": ["magic"]}, "unknown off-policy estimator 'magic'"),
    ({"synthetic": {}, "epsilon": 1.5}, "epsilon"),
])
def test_bad_off_policy_configs(tmp_path: Path, off_policy: dict, message: str) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = off_policy
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_gate_on_an_estimator_that_is_not_evaluated(tmp_path: Path) -> None:
    cfg = _config(tmp_path, estimators=["ips"])
    cfg["gate"] = [{"metric": "snips", "role": "primary"}]
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "'snips' is not evaluated" in result.stderr


def test_logged_feedback_file_gives_the_same_estimates(tmp_path: Path) -> None:
    from harness.datasets.bandit import write_logged_feedback
    from harness.datasets.synthetic_logs import make_logged_feedback
    from harness.apps.run import load_dataset

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    simulated = _config(tmp_path / "a", estimators=["ips", "snips"])
    _, data_sim, _ = _run(tmp_path / "a", simulated)
    config = parse_config(simulated)
    logs = make_logged_feedback(load_dataset(config), n_rounds=20000, temperature=0.5, seed=config.seed + 2)
    path = write_logged_feedback(logs.feedback, tmp_path / "logs.parquet")
    from_file = small_config(tmp_path / "b")
    from_file["evaluate"]["off_policy"] = {"feedback": str(path), "estimators": ["ips", "snips"]}
    _, data_file, _ = _run(tmp_path / "b", from_file)
    pick = lambda d: {(r["model"], r["metric"]): r["value"] for r in d["metrics"] if r["metric"] in ("ips", "snips")}  # noqa: E731
    assert pick(data_file) == pytest.approx(pick(data_sim), abs=1e-12)
    assert "true_values" not in data_file["off_policy"]


def test_feedback_with_unknown_users_is_refused(tmp_path: Path) -> None:
    from harness.datasets.bandit import LoggedFeedback, write_logged_feedback

    fb = LoggedFeedback(action=np.array([0, 1]), reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
                        n_actions=200, context_id=np.array([0, 999]))
    path = write_logged_feedback(fb, tmp_path / "logs.parquet")
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"feedback": str(path)}
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 2 and "1 rows have a context_id" in result.stderr


def test_a_policy_the_logs_never_show_is_refused_naming_the_model(tmp_path: Path) -> None:
    """Logged actions that are never the model's top item: pi_e is 0 on every row and the
    self-normalised estimate 0 / 0; the run stops with exit 2 naming the model and the
    estimator, before any folder is written."""
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset
    from harness.datasets.bandit import LoggedFeedback, write_logged_feedback

    cfg = small_config(tmp_path)
    config = parse_config(cfg)
    dataset = load_dataset(config)
    spec = config.models["popularity"]
    model = build_model("popularity", spec.kind, dict(spec.params), dataset, config.seed)
    model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
    users = np.arange(3)
    top = model.retrieve(users, 1).items[:, 0]
    fb = LoggedFeedback(action=(top + 1) % dataset.n_items, reward=np.array([1.0, 0.0, 1.0]),
                        pscore=np.full(3, 0.02), n_actions=dataset.n_items, context_id=users)
    cfg["evaluate"]["off_policy"] = {"feedback": str(write_logged_feedback(fb, tmp_path / "logs.parquet"))}
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("model 'popularity': snips: pi_e is 0 on all 3 logged rows, so the self-normalised estimate is 0 / 0"
            in " ".join(result.stderr.split()))
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
