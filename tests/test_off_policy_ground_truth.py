"""Off-policy estimates against exact policy values of a simulated logging run, and
weight diagnostics (hand cases, mean weight ~ 1 under full support, support deficiency)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from harness.datasets.synthetic_bandit import make_synthetic_bandit
from harness.errors import ConfigError, DataValidationError
from harness.metrics.off_policy import DM, DR, IPS, SNDR, SNIPS, OPEInputs, estimate_intervals
from harness.metrics.ope_diagnostics import support_deficiency, weight_diagnostics


def _epsilon_greedy(scores: np.ndarray, eps: float) -> np.ndarray:
    """(n_contexts, n_actions, 1) table: greedy on scores with uniform exploration."""
    n_ctx, n_act = scores.shape
    table = np.full((n_ctx, n_act), eps / n_act)
    table[np.arange(n_ctx), scores.argmax(axis=1)] += 1 - eps
    return table[:, :, None]


def _inputs(sim, pi_e, q_hat=None):
    return OPEInputs(reward=sim.feedback.reward, pscore=sim.feedback.pscore, **sim.sparse_policy(pi_e, q_hat))


@pytest.mark.slow
def test_unbiased_estimators_cover_the_exact_value_in_90_to_99_percent_of_200_runs():
    n_reps, alpha = 200, 0.05
    hits = {"ips": 0, "snips": 0, "dr": 0, "sndr": 0}
    first = make_synthetic_bandit(1500, n_actions=8, n_contexts=30, seed=0, structure_seed=99)
    pi_e = _epsilon_greedy(first.q_true[:, :, 0] + np.random.default_rng(1).normal(0, 0.3, (30, 8)), 0.3)
    truth = first.policy_value(pi_e)
    q_bad = np.clip(first.q_true + 0.15, 0, 1)  # a biased reward model: DR stays unbiased
    for rep in range(n_reps):
        sim = make_synthetic_bandit(1500, n_actions=8, n_contexts=30, seed=1000 + rep, structure_seed=99)
        res = estimate_intervals([IPS(), SNIPS(), DR(), SNDR()], _inputs(sim, pi_e, q_bad), alpha=alpha)
        for name, iv in res.items():
            hits[name] += iv.low <= truth <= iv.high
    for name, h in hits.items():
        assert 0.90 <= h / n_reps <= 0.99, (name, h)


def test_dm_with_the_true_reward_model_and_large_data_is_close():
    sim = make_synthetic_bandit(20000, n_actions=5, len_list=2, n_contexts=20, seed=3)
    pi_e = np.repeat(_epsilon_greedy(sim.q_true[:, :, 0], 0.2), 2, axis=2)
    truth = sim.policy_value(pi_e)
    d = _inputs(sim, pi_e, sim.q_true)
    for est in (DM(), DR(), IPS(), SNIPS()):
        iv = est.estimate_interval(d, alpha=0.001)
        assert iv.low <= truth <= iv.high, est.name


def test_bootstrap_interval_covers_the_truth():
    sim = make_synthetic_bandit(4000, n_actions=6, n_contexts=25, seed=5)
    pi_e = _epsilon_greedy(sim.q_true[:, :, 0], 0.4)
    truth = sim.policy_value(pi_e)
    res = estimate_intervals([IPS(), SNIPS()], _inputs(sim, pi_e), method="bootstrap", alpha=0.01,
                             n_bootstrap=500, seed=0)
    for iv in res.values():
        assert iv.low <= truth <= iv.high
        assert iv.high - iv.low == pytest.approx(2 * 2.576 * iv.se, rel=0.2)


# --- diagnostics ---------------------------------------------------------------------------

def test_diagnostics_hand_case():
    pi_e = np.array([0.5, 0.5, 0.2, 0.0])
    pscore = np.array([0.5, 0.25, 0.1, 0.5])  # w = [1, 2, 2, 0]
    d = weight_diagnostics(pi_e, pscore, clip=1.5, min_ess=3.0)
    assert d.ess == pytest.approx(25 / 9)
    assert d.ess_ratio == pytest.approx(25 / 36)
    assert d.max_weight == 2.0 and d.mean_weight == pytest.approx(1.25)
    assert d.p999_weight == pytest.approx(np.quantile([1, 2, 2, 0], 0.999))
    assert d.top1pct_share == pytest.approx(2 / 5)  # ceil(4 / 100) = 1 row
    assert d.clipped_fraction == pytest.approx(0.5)
    assert d.low_ess and d.gate_outcome_cap == "INCONCLUSIVE"
    assert not weight_diagnostics(pi_e, pscore, min_ess=2.0).low_ess
    assert weight_diagnostics(np.zeros(3), np.ones(3)).ess == 0.0


def test_mean_weight_is_one_under_full_support_and_shows_deficiency():
    sim = make_synthetic_bandit(30000, n_actions=6, n_contexts=20, seed=8)
    pi_e = _epsilon_greedy(sim.q_true[:, :, 0], 0.5)
    w_diag = IPS().diagnostics(_inputs(sim, pi_e))
    se = np.std(_inputs(sim, pi_e).weight) / math.sqrt(30000)
    assert abs(w_diag.mean_weight - 1) < 4 * se
    # a logging policy that never shows action 0: pi_e's mass there is lost to IPS
    pi_b = sim.pi_b.copy()
    pi_b[:, 0, :] = 0
    pi_b /= pi_b.sum(axis=1, keepdims=True)
    x = sim.feedback.context_id
    mass = support_deficiency(pi_e[x], pi_b[x])
    np.testing.assert_allclose(mass, pi_e[x, 0, 0])
    rng = np.random.default_rng(0)
    act = np.array([rng.choice(6, p=pi_b[c, :, 0]) for c in x[:5000]])
    diag = weight_diagnostics(pi_e[x[:5000], act, 0], pi_b[x[:5000], act, 0], unsupported_mass=mass[:5000])
    assert diag.n_support_deficient == 5000
    expected = 1 - diag.unsupported_mass
    se = np.std(pi_e[x[:5000], act, 0] / pi_b[x[:5000], act, 0]) / math.sqrt(5000)
    assert abs(diag.mean_weight - expected) < 4 * se


def test_diagnostics_bad_input():
    with pytest.raises(DataValidationError, match=r"pscore: 1 of 2 values outside"):
        weight_diagnostics(np.array([0.1, 0.2]), np.array([0.0, 0.5]))
    with pytest.raises(ConfigError, match="min_ess_ratio: must be in"):  # an option, not data
        weight_diagnostics(np.array([0.1]), np.array([0.5]), min_ess_ratio=2.0)
    with pytest.raises(DataValidationError, match="unsupported_mass"):
        weight_diagnostics(np.array([0.1]), np.array([0.5]), unsupported_mass=np.array([0.1, 0.2]))
    with pytest.raises(DataValidationError, match="must match"):
        support_deficiency(np.ones((2, 3)), np.ones((2, 4)))
