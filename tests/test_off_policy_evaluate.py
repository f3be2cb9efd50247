"""The off-policy front door: estimator specs, rows with diagnostics, paired comparisons."""

from __future__ import annotations

import numpy as np
import pytest

from harness.datasets.synthetic_bandit import make_synthetic_bandit
from harness.errors import ConfigError, DataValidationError
from harness.metrics.off_policy import IPS, SNIPS, OPEInputs
from harness.metrics.ope_evaluate import compare_policies, evaluate_off_policy, make_estimator


def test_make_estimator_specs():
    assert make_estimator("snips") == SNIPS()
    assert make_estimator({"name": "ips", "lambda_": 20.0}) == IPS(lambda_=20.0)
    assert make_estimator(IPS(lambda_=3.0)) == IPS(lambda_=3.0)
    with pytest.raises(ConfigError, match="unknown off-policy estimator 'ipw'"):
        make_estimator("ipw")
    with pytest.raises(ConfigError, match=r"estimator 'snips': bad parameters \['lambda_'\]"):
        make_estimator({"name": "snips", "lambda_": 1.0})
    labelled = make_estimator({"name": "ips", "lambda_": 20.0, "label": "ips_clip20"})
    assert (labelled.name, labelled.key, labelled.lambda_) == ("ips", "ips_clip20", 20.0)
    assert make_estimator("ips").key == "ips"
    for bad in ("", "ips/clip", 3):
        with pytest.raises(ConfigError, match="estimator 'ips': label must be letters, digits"):
            make_estimator({"name": "ips", "label": bad})


def test_rows_carry_estimates_intervals_and_diagnostics():
    rng = np.random.default_rng(0)
    n = 50
    data = OPEInputs(reward=rng.uniform(size=n), pscore=np.full(n, 0.5), pi_e=rng.uniform(size=n),
                     q_hat=rng.uniform(size=n), v_hat=rng.uniform(size=n))
    res = evaluate_off_policy(data, ["ips", "dm", {"name": "dr", "lambda_": 1.5}], min_ess=1000)
    by = {r["estimator"]: r for r in res.rows}
    assert by["ips"]["value"] == pytest.approx(np.mean(data.pi_e / 0.5 * data.reward))
    assert by["dm"]["value"] == pytest.approx(data.v_hat.mean())
    w = data.pi_e / 0.5
    assert by["ips"]["ess"] == pytest.approx(w.sum() ** 2 / (w @ w))
    assert by["dr"]["clipped_fraction"] == pytest.approx(np.mean(w > 1.5))
    assert by["ips"]["low_ess"] and by["ips"]["gate_cap"] == "INCONCLUSIVE"  # ESS < 1000
    assert res.per_unit["ips"].mean() == pytest.approx(by["ips"]["value"])


def test_paired_comparison_is_centred_on_the_exact_difference():
    sim = make_synthetic_bandit(20000, n_actions=6, n_contexts=30, seed=11)
    n_ctx, n_act = 30, 6

    def eps_greedy(scores, eps):
        t = np.full((n_ctx, n_act), eps / n_act)
        t[np.arange(n_ctx), scores.argmax(axis=1)] += 1 - eps
        return t[:, :, None]

    good = eps_greedy(sim.q_true[:, :, 0], 0.3)
    bad = eps_greedy(-sim.q_true[:, :, 0], 0.3)
    truth = sim.policy_value(good) - sim.policy_value(bad)
    fb = sim.feedback

    def result(pi):
        d = OPEInputs(reward=fb.reward, pscore=fb.pscore, **sim.sparse_policy(pi, sim.q_true))
        return evaluate_off_policy(d, ["snips", "dr"])

    base, cand = result(bad), result(good)
    for row in compare_policies(base, cand, alpha=0.001):
        assert row["delta"] == pytest.approx(row["candidate"] - row["baseline"], abs=1e-12)
        assert row["ci_low"] <= truth <= row["ci_high"], row["metric"]
        assert row["p_value"] < 1e-6 and row["gate_cap"] is None
    single = base.intervals["dr"].se
    assert compare_policies(base, cand)[1]["se"] < 2 * single  # pairing keeps the delta's se small


def test_paired_comparison_needs_the_same_rows():
    def res(n):
        return evaluate_off_policy(OPEInputs(reward=np.ones(n), pscore=np.full(n, 0.5), pi_e=np.full(n, 0.5)),
                                   ["ips"])
    with pytest.raises(DataValidationError, match="baseline has 5 units, candidate 6"):
        compare_policies(res(5), res(6))
