"""LoggedFeedback validation, the Open Bandit Dataset loader on generated files, and the
synthetic bandit generator's ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.preprocessing import LabelEncoder

from harness.datasets.bandit import LoggedFeedback, load_open_bandit_dataset
from harness.datasets.synthetic_bandit import make_synthetic_bandit, sample_from_tables
from harness.errors import DataValidationError

GOOD = dict(action=np.array([0, 2, 1]), reward=np.array([1.0, 0.0, 1.0]), pscore=np.array([0.3, 0.5, 1.0]),
            n_actions=3, position=np.array([0, 1, 0]), len_list=2)


@pytest.mark.parametrize("change, match", [
    ({"action": np.array([0, 3, 1])}, r"action: 1 of 3 values outside \[0, 2\] \(e.g. 3\)"),
    ({"action": np.array([0.0, 1.0, 1.0])}, "action: expected integer ids"),
    ({"position": np.array([0, 2, 0])}, r"position: 1 of 3 values outside \[0, 1\]"),
    ({"position": None}, "position is required when len_list=2"),
    ({"pscore": np.array([0.3, 0.0, 1.2])}, r"pscore: 2 of 3 propensities outside \(0, 1\]"),
    ({"pscore": np.array([0.3, 0.5])}, r"pscore: length \(2,\) != 3"),
    ({"reward": np.array([1.0, np.nan, 0.0])}, "reward: 1 of 3 rewards are NaN"),
    ({"reward": np.array([1.0, -1.0, 0.0]), "nonnegative_reward": True}, "1 of 3 rewards are NaN, infinite or negative"),
    ({"n_actions": 0}, "n_actions must be a positive integer"),
    ({"context": np.ones((2, 4))}, r"context: expected finite features of shape \(3, d\)"),
    ({"context_id": np.array([0, -1, 2])}, "context_id: 1 of 3 values negative"),
    ({"action_context": np.ones((2, 2))}, r"action_context: expected shape \(3, d\)"),
])
def test_logged_feedback_refuses_bad_columns(change, match):
    with pytest.raises(DataValidationError, match=match):
        LoggedFeedback(**{**GOOD, **change})


def test_logged_feedback_take_and_positions():
    fb = LoggedFeedback(**GOOD)
    sub = fb.take(np.array([2, 0]))
    np.testing.assert_array_equal(sub.action, [1, 0])
    np.testing.assert_array_equal(sub.positions, [0, 0])
    single = LoggedFeedback(action=np.array([1]), reward=np.array([1]), pscore=np.array([0.5]), n_actions=2)
    np.testing.assert_array_equal(single.positions, [0])


# --- Open Bandit Dataset format ---------------------------------------------------------

def _write_obd(root, n=60, n_items=5, seed=0):
    rng = np.random.default_rng(seed)
    folder = root / "random" / "men"
    folder.mkdir(parents=True)
    levels = [[f"h{j}{k}" for k in range(3)] for j in range(4)]
    log = pd.DataFrame({
        # few distinct timestamps: ties must keep the file order (a stable sort)
        "timestamp": [f"2019-11-24 00:00:{s:02d}+00:00" for s in rng.integers(0, 20, n)],
        "item_id": rng.integers(0, n_items, n), "position": rng.integers(1, 4, n),
        "click": rng.integers(0, 2, n), "propensity_score": np.full(n, 1 / n_items),
        **{f"user_feature_{j}": rng.choice(levels[j], n) for j in range(4)},
        **{f"user-item_affinity_{i}": rng.random(n) for i in range(n_items)},
    })
    log.to_csv(folder / "men.csv")
    items = pd.DataFrame({"item_id": np.arange(n_items), "item_feature_0": rng.normal(size=n_items),
                          "item_feature_1": rng.choice(["b", "a", "c"], n_items),
                          "item_feature_2": rng.choice(["z", "y"], n_items)})
    items.to_csv(folder / "item_context.csv")
    return log, items


def test_open_bandit_dataset_loader(tmp_path):
    log, items = _write_obd(tmp_path)
    fb = load_open_bandit_dataset(tmp_path, behavior_policy="random", campaign="men")
    order = sorted(range(len(log)), key=lambda i: log["timestamp"][i])  # Python's sort is stable
    np.testing.assert_array_equal(fb.action, log["item_id"].to_numpy()[order])
    np.testing.assert_array_equal(fb.position, log["position"].to_numpy()[order] - 1)
    np.testing.assert_array_equal(fb.reward, log["click"].to_numpy()[order])
    np.testing.assert_allclose(fb.pscore, 0.2)
    assert fb.n_actions == 5 and fb.len_list == 3
    # one-hot user features, first sorted level of each dropped: 4 features x 2 columns
    expected = []
    for j in range(4):
        col = log[f"user_feature_{j}"].to_numpy()[order]
        lv = sorted(set(col))
        expected += [[float(v == level) for v in col] for level in lv[1:]]
    np.testing.assert_array_equal(fb.context, np.array(expected).T)
    # equal context rows share a context id, different rows do not
    same = (fb.context[:, None, :] == fb.context[None, :, :]).all(axis=2)
    np.testing.assert_array_equal(same, fb.context_id[:, None] == fb.context_id[None, :])
    enc = np.column_stack([LabelEncoder().fit_transform(items[c]) for c in ("item_feature_1", "item_feature_2")])
    np.testing.assert_allclose(fb.action_context, np.column_stack([enc, items["item_feature_0"]]))


def test_open_bandit_dataset_errors(tmp_path):
    with pytest.raises(DataValidationError, match="file not found"):
        load_open_bandit_dataset(tmp_path, campaign="men")
    log, _ = _write_obd(tmp_path)
    log.drop(columns=["click"]).to_csv(tmp_path / "random" / "men" / "men.csv")
    with pytest.raises(DataValidationError, match=r"missing columns \['click'\]"):
        load_open_bandit_dataset(tmp_path, campaign="men")
    log.assign(propensity_score=0.0).to_csv(tmp_path / "random" / "men" / "men.csv")
    with pytest.raises(DataValidationError, match=r"pscore: 60 of 60 propensities outside"):
        load_open_bandit_dataset(tmp_path, campaign="men")


# --- synthetic generator ----------------------------------------------------------------

def test_synthetic_bandit_logs_its_own_propensities_and_exact_values():
    sim = make_synthetic_bandit(40000, n_actions=4, len_list=2, n_contexts=6, seed=2)
    fb = sim.feedback
    assert len(fb) == 80000
    np.testing.assert_array_equal(fb.pscore, sim.pi_b[fb.context_id, fb.action, fb.positions])
    # on-policy: the mean logged reward estimates the logging policy's exact value
    se = fb.reward.std() / np.sqrt(len(fb))
    assert abs(fb.reward.mean() - sim.policy_value(sim.pi_b)) < 4 * se
    # the exact value is the hand-written triple sum
    pi = np.full(sim.pi_b.shape, 0.25)
    hand = sum(sim.context_prob[x] * pi[x, a, p] * sim.q_true[x, a, p] / 2
               for x in range(6) for a in range(4) for p in range(2))
    assert sim.policy_value(pi) == pytest.approx(hand, abs=1e-12)
    # empirical action frequencies per (context, position) follow pi_b
    counts = np.zeros_like(sim.pi_b)
    np.add.at(counts, (fb.context_id, fb.action, fb.positions), 1)
    freq = counts / counts.sum(axis=1, keepdims=True)
    assert np.abs(freq - sim.pi_b).max() < 0.05


def test_sample_from_tables_matches_probabilities():
    table = np.array([[0.2, 0.8, 0.0], [0.0, 0.0, 1.0]])
    groups = np.repeat([0, 1], 20000)
    draws = sample_from_tables(table, groups, np.random.default_rng(0))
    assert set(draws[20000:]) == {2} and 2 not in set(draws[:20000])
    assert np.mean(draws[:20000] == 1) == pytest.approx(0.8, abs=0.01)


def test_synthetic_bandit_bad_arguments():
    with pytest.raises(DataValidationError, match="n_actions must be a positive integer"):
        make_synthetic_bandit(10, n_actions=0)
    with pytest.raises(DataValidationError, match="behavior_temperature must be > 0"):
        make_synthetic_bandit(10, behavior_temperature=0.0)
    sim = make_synthetic_bandit(10, n_actions=3, n_contexts=4)
    with pytest.raises(DataValidationError, match=r"pi_e: expected shape \(4, 3, 1\)"):
        sim.policy_value(np.ones((4, 3)))
    with pytest.raises(DataValidationError, match="must sum to 1"):
        sim.sparse_policy(np.ones((4, 3, 1)))


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_logged_feedback_file_round_trip(tmp_path, suffix):
    from harness.datasets.bandit import read_logged_feedback, write_logged_feedback
    fb = make_synthetic_bandit(50, n_actions=4, len_list=2, n_contexts=5, dim=3, seed=1).feedback
    path = write_logged_feedback(fb, tmp_path / f"log{suffix}")
    back = read_logged_feedback(path, n_actions=4)
    for key in ("action", "reward", "pscore", "position", "context_id"):
        np.testing.assert_array_equal(getattr(back, key), getattr(fb, key))
    np.testing.assert_allclose(back.context, fb.context, rtol=1e-15)
    assert back.n_actions == 4 and back.len_list == 2


def test_logged_feedback_file_errors(tmp_path):
    from harness.datasets.bandit import read_logged_feedback
    with pytest.raises(DataValidationError, match="file not found"):
        read_logged_feedback(tmp_path / "none.parquet")
    pd.DataFrame({"action": [0, 1], "reward": [1.0, 0.0]}).to_csv(tmp_path / "a.csv", index=False)
    with pytest.raises(DataValidationError, match=r"missing columns \['pscore'\]"):
        read_logged_feedback(tmp_path / "a.csv")
    pd.DataFrame({"action": [0, 1], "reward": [1.0, 0.0], "pscore": [0.5, 0.5], "clicks": [1, 2]}).to_csv(
        tmp_path / "b.csv", index=False)
    with pytest.raises(DataValidationError, match=r"1 unknown columns \['clicks'\]"):
        read_logged_feedback(tmp_path / "b.csv")
    pd.DataFrame({"action": [0, 5], "reward": [1.0, 0.0], "pscore": [0.5, 0.5]}).to_csv(tmp_path / "c.csv", index=False)
    with pytest.raises(DataValidationError, match=r"action: 1 of 2 values outside \[0, 2\]"):
        read_logged_feedback(tmp_path / "c.csv", n_actions=3)
