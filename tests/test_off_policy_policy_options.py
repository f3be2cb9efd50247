"""evaluate.off_policy.policy inside a run (softmax, top-k over logged positions,
epsilon-greedy) and labelled copies of one estimator, each against the plain formula
written here from the model's own scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.spec.config import parse_config
from tests.conftest import small_config, write_config

N_ROUNDS = 5000


def _run(tmp_path: Path, cfg: dict) -> dict:
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code in (0, 1), result.output
    (folder,) = list((tmp_path / "results").iterdir())
    return json.loads((folder / "results.json").read_text())


def _world(cfg: dict):
    """The run's data set, its simulated logs, and the fitted candidate model."""
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset
    from harness.datasets.synthetic_logs import make_logged_feedback

    config = parse_config(cfg)
    dataset = load_dataset(config)
    logs = make_logged_feedback(dataset, n_rounds=N_ROUNDS, temperature=0.5, seed=config.seed + 2)
    spec = config.models["candidate"]
    model = build_model("candidate", spec.kind, dict(spec.params), dataset, config.seed)
    model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
    return dataset, logs, model


def _values(data: dict, model: str) -> dict[str, float]:
    return {r["metric"]: r["value"] for r in data["metrics"] if r["model"] == model}


def test_softmax_policy_equals_the_softmax_of_the_models_scores(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": N_ROUNDS, "temperature": 0.5},
                                     "policy": "softmax", "temperature": 0.3, "estimators": ["ips", "snips", "dr"],
                                     "reward_model": "logistic"}
    data = _run(tmp_path, cfg)
    dataset, logs, model = _world(cfg)
    full = model.retrieve(np.arange(dataset.n_users), dataset.n_items)
    scores = np.full((dataset.n_users, dataset.n_items), -np.inf)
    for u in range(dataset.n_users):  # plain loop: scatter each user's scores by item
        for item, score in zip(full.items[u], full.scores[u]):
            if item >= 0:  # seen items are not returned (padding): probability 0
                scores[u, item] = score
    pi = np.exp((scores - scores.max(axis=1, keepdims=True)) / 0.3)
    pi /= pi.sum(axis=1, keepdims=True)
    fb = logs.feedback
    w = pi[fb.context_id, fb.action] / fb.pscore
    got = _values(data, "candidate")
    assert got["ips"] == pytest.approx(np.mean(w * fb.reward), rel=1e-10)
    assert got["snips"] == pytest.approx(np.sum(w * fb.reward) / np.sum(w), rel=1e-10)
    truth = np.mean((pi * logs.click_prob).sum(axis=1))
    assert data["off_policy"]["true_values"]["candidate"] == pytest.approx(truth, rel=1e-10)
    for est in ("ips", "snips", "dr"):  # seeded: the truth lies inside each 95% interval
        row = next(r for r in data["metrics"] if r["model"] == "candidate" and r["metric"] == est)
        assert row["ci_low"] <= truth <= row["ci_high"], (est, row, truth)


def test_top_k_policy_fills_the_logged_positions_in_the_models_order(tmp_path: Path) -> None:
    from harness.datasets.bandit import LoggedFeedback, write_logged_feedback

    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": N_ROUNDS, "temperature": 0.5}}
    dataset, logs, model = _world(cfg)
    rng = np.random.default_rng(1)
    fb0 = logs.feedback
    position = rng.integers(0, 3, len(fb0))  # three slots per request
    fb = LoggedFeedback(action=fb0.action, reward=fb0.reward, pscore=fb0.pscore, n_actions=fb0.n_actions,
                        context_id=fb0.context_id, position=position, len_list=3)
    path = write_logged_feedback(fb, tmp_path / "slots.parquet")
    for policy, eps in (("top_k", 0.1), ("epsilon_greedy", 0.1)):
        (tmp_path / policy).mkdir()
        cfg = small_config(tmp_path / policy)
        cfg["evaluate"]["off_policy"] = {"feedback": str(path), "policy": policy, "epsilon": eps,
                                         "estimators": ["ips"]}
        got = _values(_run(tmp_path / policy, cfg), "candidate")["ips"]
        top3 = model.retrieve(np.arange(dataset.n_users), 3).items
        slot = position if policy == "top_k" else np.zeros_like(position)
        pi_e = np.array([(1 - eps) * (top3[u, p] == a) + eps / fb.n_actions
                         for u, p, a in zip(fb.context_id, slot, fb.action)])
        assert got == pytest.approx(np.mean(pi_e / fb.pscore * fb.reward), rel=1e-12), policy


def test_labelled_copies_of_an_estimator_run_and_gate(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": N_ROUNDS, "temperature": 0.5}, "epsilon": 0.2,
                                     "estimators": ["ips", {"name": "ips", "lambda_": 2.0, "label": "ips_clip2"}]}
    cfg["gate"] = [{"metric": "ips_clip2", "role": "primary", "direction": "higher"}]
    data = _run(tmp_path, cfg)
    dataset, logs, model = _world(cfg)
    fb = logs.feedback
    top = model.retrieve(np.arange(dataset.n_users), 1).items[:, 0]
    w = (0.8 * (top[fb.context_id] == fb.action) + 0.2 / fb.n_actions) / fb.pscore
    got = _values(data, "candidate")
    assert got["ips"] == pytest.approx(np.mean(w * fb.reward), rel=1e-12)
    assert got["ips_clip2"] == pytest.approx(np.mean(np.minimum(w, 2.0) * fb.reward), rel=1e-12)
    assert [c["metric"] for c in data["verdict"]["criteria"]] == ["ips_clip2"]


@pytest.mark.parametrize("off_policy, message", [
    ({"estimators": ["ips", {"name": "ips", "lambda_": 5}]}, "['ips'] appear more than once; give each copy"),
    ({"policy": "softmax", "epsilon": 0.1}, "epsilon applies to epsilon_greedy and top_k"),
    ({"policy": "boltzmann"}, "policy"),
    ({"policy": "softmax", "temperature": 0}, "temperature"),
    ({"estimators": [{"name": "ips", "label": "a/b"}]}, "label must be letters"),
])
def test_bad_policy_and_label_options_are_exit_2_at_validate(tmp_path: Path, off_policy: dict,
                                                              message: str) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {}, **off_policy}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_reward_range_keeps_intervals_and_deltas_inside_it(tmp_path: Path) -> None:
    """The same run with and without reward_range [0, 1]: equal estimates; each interval is
    the unbounded one intersected with [0, 1] (deltas with [-1, 1])."""
    runs = {}
    for bounded in (False, True):
        (tmp_path / str(bounded)).mkdir()
        cfg = small_config(tmp_path / str(bounded))
        cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 300, "temperature": 0.2}, "epsilon": 0.0,
                                         "estimators": ["ips"], "min_ess": 0,
                                         **({"reward_range": [0, 1]} if bounded else {})}
        runs[bounded] = _run(tmp_path / str(bounded), cfg)
    for model in ("popularity", "candidate"):
        free, kept = (next(r for r in runs[b]["metrics"] if r["model"] == model and r["metric"] == "ips")
                      for b in (False, True))
        assert kept["value"] == free["value"]
        assert (kept["ci_low"], kept["ci_high"]) == (max(free["ci_low"], 0.0), min(free["ci_high"], 1.0))
    assert any(r["ci_low"] < 0 for r in runs[False]["metrics"] if r["metric"] == "ips")  # the case is real
    free, kept = (next(c for c in runs[b]["comparison"] if c["metric"] == "ips") for b in (False, True))
    assert kept["delta"] == free["delta"] and kept["ci_low"] >= -1.0 and kept["ci_high"] <= 1.0


def test_rewards_outside_reward_range_are_refused(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 300}, "reward_range": [0, 0.5]}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "logged rewards lie outside reward_range [0.0, 0.5]" in result.stderr, result.output
    cfg["evaluate"]["off_policy"]["reward_range"] = [1, 0]
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "needs low < high" in result.stderr
