"""Overlap beyond ESS (issue 13, case 5): Pareto k-hat, thin actions, the mean weight.

Seeded simulations state their Monte Carlo SE. Larger version:
``benchmarks/gate_overlap.py``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.errors import ConfigError, DataValidationError
from harness.inference.gate import FAIL, INCONCLUSIVE, decide
from harness.metrics.ope_diagnostics import pareto_k_hat, pareto_k_threshold, weight_diagnostics

K_ACTIONS = 10
P_RARE = 0.0065   # logging probability of action 0
PI_RARE = 0.3     # evaluation probability of action 0


def rare_action_logs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(actions, pi_e of the logged action, pscore): population ESS = n / E[w^2] ~ 70 at n = 1000."""
    p_b = np.r_[P_RARE, np.full(K_ACTIONS - 1, (1 - P_RARE) / (K_ACTIONS - 1))]
    p_e = np.r_[PI_RARE, np.full(K_ACTIONS - 1, (1 - PI_RARE) / (K_ACTIONS - 1))]
    a = rng.choice(K_ACTIONS, n, p=p_b)
    return a, p_e[a], p_b[a]


def contextual_rare_action_logs(n: int, rng: np.random.Generator):
    """Two kinds of context: in 75% pi_b plays action 0 with probability 0.02, in 25%
    with 0.0022; pi_e plays it with 0.3 everywhere. Population ESS ~ 71 at n = 1000,
    driven by the second kind's rows (0.55 expected), which most samples lack."""
    rare = rng.random(n) < 0.25
    p0 = np.where(rare, 0.0022, 0.02)
    first = rng.random(n) < p0
    a = np.where(first, 0, rng.integers(1, K_ACTIONS, n))
    pscore = np.where(first, p0, (1 - p0) / (K_ACTIONS - 1))
    pi_e = np.where(first, PI_RARE, (1 - PI_RARE) / (K_ACTIONS - 1))
    return a, pi_e, pscore


def test_rare_action_population_ess_is_about_70():
    p_b = np.r_[P_RARE, np.full(9, (1 - P_RARE) / 9)]
    p_e = np.r_[PI_RARE, np.full(9, (1 - PI_RARE) / 9)]
    assert 1000 / (p_e**2 / p_b).sum() == pytest.approx(70, abs=1)
    e_w2 = 0.75 * (0.09 / 0.02 + 0.49 / 0.98) + 0.25 * (0.09 / 0.0022 + 0.49 / 0.9978)
    assert 1000 / e_w2 == pytest.approx(71, abs=1)


@pytest.mark.slow
@pytest.mark.parametrize("logs, min_no_actions, max_low_ess", [
    (rare_action_logs, 0.90, 1.0), (contextual_rare_action_logs, 0.3, 0.6)])
def test_rare_action_is_capped_in_at_least_95_percent_of_runs(logs, min_no_actions, max_low_ess):
    """Issue 13: the low-ESS flag fired in 32% of runs. 1000 seeded runs at n = 1000
    (MC SE at 95%: 0.69 points). Measured, context-free / contextual logs: low_overlap
    with the action column 100.0% / 100.0%; low_ess alone 89.5% / 39.8%; without the
    action column (ESS, k-hat, mean weight) 93.3% / 46.9%: the per-action check is what
    catches it, so the runner must pass the logged actions."""
    rng = np.random.default_rng(2013)
    n_runs = 1000
    flagged = low_ess = flagged_no_actions = 0
    for _ in range(n_runs):
        a, pi_e, pscore = logs(1000, rng)
        diag = weight_diagnostics(pi_e, pscore, actions=a)
        flagged += diag.low_overlap and diag.gate_outcome_cap == INCONCLUSIVE
        low_ess += diag.low_ess
        flagged_no_actions += weight_diagnostics(pi_e, pscore).low_overlap
    assert flagged / n_runs >= 0.95
    assert flagged_no_actions / n_runs >= min_no_actions
    assert low_ess / n_runs <= max_low_ess  # the defect: ESS alone misses runs


def test_good_overlap_is_not_flagged():
    """Uniform logging over 10 actions, pi_e 0.3 on one of them: ESS ~ 690 of 1000.
    500 seeded runs: no flag in any (MC SE of a 1% rate: 0.44 points)."""
    rng = np.random.default_rng(5)
    p_e = np.r_[PI_RARE, np.full(9, (1 - PI_RARE) / 9)]
    flagged = 0
    for _ in range(500):
        a = rng.integers(0, K_ACTIONS, 1000)
        flagged += weight_diagnostics(p_e[a], np.full(1000, 0.1), actions=a).low_overlap
    assert flagged / 500 <= 0.01


def test_pareto_k_hat_recovers_the_tail_index_and_flags_heavy_tails():
    """Pareto(alpha) weights have tail index k = 1 / alpha. 40 seeded samples of 5000
    each: mean k-hat within 0.1 of the truth (SD of k-hat ~ 0.06-0.14, SE of the mean
    <= 0.022); k = 0.9 flagged in >= 80%, k = 0.3 in none."""
    rng = np.random.default_rng(9)
    for k_true, flag_low, flag_high in ((0.3, 0.0, 0.0), (0.5, 0.0, 0.2), (0.9, 0.8, 1.0)):
        khat = np.array([pareto_k_hat(rng.pareto(1 / k_true, 5000) + 1) for _ in range(40)])
        assert abs(khat.mean() - k_true) < 0.1, (k_true, khat.mean())
        rate = np.mean(khat > pareto_k_threshold(5000))
        assert flag_low <= rate <= flag_high, (k_true, rate)


def test_pareto_k_hat_is_scale_invariant_and_none_for_tied_or_short_tails():
    rng = np.random.default_rng(1)
    w = rng.pareto(2.0, 2000) + 1
    assert pareto_k_hat(10 * w) == pytest.approx(pareto_k_hat(w), rel=1e-9)
    assert pareto_k_hat(np.ones(1000)) is None
    assert pareto_k_hat(w[:20]) is None
    assert pareto_k_threshold(100) == pytest.approx(0.5) and pareto_k_threshold(10**6) == 0.7


def test_mean_weight_reveals_an_action_never_logged():
    """The rare action absent from the sample: every weight is 0.705, ESS = n, no tail,
    no thin action; only the mean weight (0.705, SE 0) shows the missing pi_e mass."""
    a = np.ones(1000, dtype=int)
    diag = weight_diagnostics(np.full(1000, 0.7 / 9), np.full(1000, 0.9935 / 9), actions=a)
    assert not diag.low_ess and diag.thin_actions == () and diag.pareto_k is None
    assert diag.low_overlap and "mean weight 0.705" in diag.overlap_reason


def test_diagnostics_to_dict_and_bad_options():
    a, pi_e, pscore = rare_action_logs(1000, np.random.default_rng(0))
    d = weight_diagnostics(pi_e, pscore, actions=a).to_dict()
    assert {"pareto_k", "thin_actions", "low_overlap", "overlap_reason", "low_ess"} <= set(d)
    with pytest.raises(DataValidationError, match="actions: expected shape"):
        weight_diagnostics(pi_e, pscore, actions=a[:10])
    with pytest.raises(ConfigError, match="min_action_rows: must be an integer >= 1, got 0"):
        weight_diagnostics(pi_e, pscore, min_action_rows=0)


def test_low_overlap_reason_caps_the_gate_at_inconclusive_but_not_a_fail():
    """The diagnostics' reason as the comparison note: a PASS becomes INCONCLUSIVE, a
    significant regression still FAILs."""
    a, pi_e, pscore = rare_action_logs(1000, np.random.default_rng(3))
    diag = weight_diagnostics(pi_e, pscore, actions=a)
    assert diag.low_overlap
    rng = np.random.default_rng(4)
    index = pd.Index([f"log:{i}" for i in range(1000)])
    base = rng.random(1000)
    crit = [GateCriterion(metric="snips", role="guardrail", max_regression=0.01)]
    for shift, expected in ((0.2, INCONCLUSIVE), (-0.2, FAIL)):
        frames = {"prod": pd.DataFrame({"snips": base}, index=index),
                  "cand": pd.DataFrame({"snips": base + shift + rng.normal(0, 0.05, 1000)}, index=index)}
        comps = compare_models(frames, baseline="prod", candidates=["cand"], metrics=["snips"], method="t_test",
                               notes={("cand", "snips"): diag.overlap_reason})
        verdict = decide(crit, comps)
        assert verdict.decision == expected
        if expected == INCONCLUSIVE:
            assert "thin action" in verdict.reasons[0]


def test_a_few_atom_policy_is_not_flagged_by_the_pareto_fit() -> None:
    """eps-greedy top-1 over softmax logs: weights are two atoms scaled by continuous logging
    propensities (bounded); a GPD fit to that mixture reports k-hat >> 0.7, so it is not used."""
    from harness.metrics.ope_diagnostics import pareto_k_hat, weight_diagnostics

    rng = np.random.default_rng(3)
    n, n_actions, eps = 20_000, 200, 0.5
    logits = rng.normal(size=n_actions) / 3.0
    p_log = np.exp(logits) / np.exp(logits).sum()
    action = rng.choice(n_actions, size=n, p=p_log)
    top = rng.integers(0, n_actions, size=n)
    pi_e = (1 - eps) * (action == top) + eps / n_actions
    pscore = p_log[action] * rng.uniform(0.9, 1.1, size=n)  # continuous propensities
    assert pareto_k_hat(pi_e / pscore) > 0.7  # what the plain fit says
    diag = weight_diagnostics(pi_e, pscore, actions=action, min_ess=50, min_ess_ratio=0.001)
    assert diag.pareto_k is None and not diag.low_overlap, diag.overlap_reason
