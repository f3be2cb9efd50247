"""Seeded simulations: the gate's error rates, interval coverage and power are what
the statistics promise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.inference.gate import FAIL, PASS, decide
from harness.metrics.stats import infer_paired_means, power_at, required_units
from tests.conftest import paired_frames

N_SIMS = 200
N_METRICS = 10
ALPHA = 0.05
# three binomial standard deviations of a rate near 5% over N_SIMS simulations
TOL = 3 * np.sqrt(ALPHA * (1 - ALPHA) / N_SIMS)


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_blas_thread")]




def _run(frames: dict[str, pd.DataFrame], criteria: list[GateCriterion], *, method: str, seed: int,
         correction: str = "holm", n_resamples: int = 500):
    comps = compare_models(frames, baseline="prod", candidates=["cand"], metrics=list(frames["prod"].columns),
                           method=method, n_resamples=n_resamples, seed=seed)
    return decide(criteria, comps, correction=correction), comps


@pytest.mark.parametrize("method", ["t_test", "bootstrap", "bca", "randomization"])
def test_a_a_gate_fails_at_most_alpha_family_wise_and_more_without_holm(method):
    """Two runs of the same model (per-unit noise of mean 0, 10 metrics gated as primary
    'not worse'): Holm keeps false FAILs at alpha; unadjusted tests fail ~1-(1-a)^10."""
    criteria = [GateCriterion(metric=f"m{j}@10", role="primary", direction="higher") for j in range(N_METRICS)]
    rng = np.random.default_rng(2026)
    fails = {"holm": 0, "bh": 0, "none": 0}
    for sim in range(N_SIMS):
        base = rng.beta(2, 5, (150, N_METRICS))
        cand = np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1)
        flip = rng.random(base.shape) < 0.5  # exchangeable: which run is "candidate" is arbitrary
        base, cand = np.where(flip, cand, base), np.where(flip, base, cand)
        comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                               metrics=[c.metric for c in criteria], method=method, n_resamples=500, seed=sim)
        for correction in fails:
            fails[correction] += decide(criteria, comps, correction=correction).decision == FAIL
    rates = {k: v / N_SIMS for k, v in fails.items()}
    assert rates["holm"] <= ALPHA + TOL, rates
    assert rates["none"] > rates["holm"], rates
    assert rates["none"] >= 0.25, rates  # 1 - 0.95^10 = 0.40 expected
    assert rates["holm"] <= rates["bh"] <= rates["none"], rates


@pytest.mark.parametrize("method", ["t_test", "bootstrap", "bca", "randomization"])
def test_95_percent_intervals_for_a_mean_delta_cover_the_truth(method):
    rng = np.random.default_rng(11)
    true_delta, hits, n_sims = 0.03, 0, 300
    for sim in range(n_sims):
        base = rng.beta(2, 5, 80)
        # skewed per-unit deltas with known mean
        cand = base + true_delta + (rng.exponential(0.1, 80) - 0.1)
        (inf,), _ = infer_paired_means(cand, base, method=method, n_resamples=1000, seed=sim)
        hits += inf.ci_low <= true_delta <= inf.ci_high
    assert 0.90 <= hits / n_sims <= 0.99


def test_poisson_bootstrap_intervals_cover_the_truth():
    rng = np.random.default_rng(12)
    true_delta, hits, n_sims = -0.01, 0, 200
    for sim in range(n_sims):
        base = rng.beta(2, 5, 1500)
        cand = base + true_delta + rng.normal(0, 0.1, 1500)
        (inf,), _ = infer_paired_means(cand, base, method="bootstrap", n_resamples=500, seed=sim,
                                       weights="poisson")
        hits += inf.ci_low <= true_delta <= inf.ci_high
    assert 0.90 <= hits / n_sims <= 0.99


@pytest.mark.parametrize("method", ["t_test", "bootstrap"])
def test_relative_intervals_cover_while_a_fixed_baseline_does_not(method):
    """Deltas independent of a noisy baseline: mean(c)/mean(b) - 1 needs the baseline's
    noise; dividing the delta interval by mean(b) as if it were known undercovers."""
    rng = np.random.default_rng(5)
    true_rel, honest, naive, n_sims = 0.3, 0, 0, 200
    for sim in range(n_sims):
        base = rng.normal(1.0, 1.0, 200)
        cand = base + rng.normal(0.3, 0.1, 200)
        (delta,), (rel,) = infer_paired_means(cand, base, method=method, n_resamples=1000, seed=sim)
        honest += rel.ci_low <= true_rel <= rel.ci_high
        naive += delta.ci_low / base.mean() <= true_rel <= delta.ci_high / base.mean()
    assert 0.90 <= honest / n_sims <= 0.99
    assert naive / n_sims < 0.7


@pytest.mark.parametrize("method", ["t_test", "bootstrap"])
@pytest.mark.parametrize("role", ["primary", "guardrail"])
def test_planted_regression_is_caught_at_the_computed_power(method, role):
    n, sd, margin = 400, 0.2, 0.01
    se = sd / np.sqrt(n)
    beyond = (sps.norm.ppf(1 - ALPHA) + sps.norm.ppf(0.7)) * se  # 70% power by design
    expected = power_at(beyond, se, alpha=ALPHA)
    assert expected == pytest.approx(0.7, abs=1e-9)
    if role == "primary":
        crit = GateCriterion(metric="m0@10", role="primary", direction="higher")
        true_delta = -beyond
    else:
        crit = GateCriterion(metric="m0@10", role="guardrail", direction="higher", max_regression=margin)
        true_delta = -margin - beyond
    rng = np.random.default_rng(99)
    caught, n_sims = 0, 300
    for sim in range(n_sims):
        base = rng.beta(2, 5, (n, 1))
        cand = base + true_delta + rng.normal(0, sd, (n, 1))
        verdict, _ = _run(paired_frames(base, cand), [crit], method=method, seed=sim, n_resamples=1000)
        caught += verdict.decision == FAIL
    assert caught / n_sims == pytest.approx(expected, abs=0.09)


def test_units_needed_give_the_promised_power():
    """Run the gate at the sample size ``required_units`` names: it passes ~80% of the time."""
    sd, effect, n0 = 0.2, 0.01, 400
    n1 = int(required_units(effect, sd / np.sqrt(n0), n0, alpha=ALPHA, power=0.8))
    assert n1 == pytest.approx(n0 * ((sps.norm.ppf(0.95) + sps.norm.ppf(0.8)) * sd / np.sqrt(n0) / effect) ** 2,
                               abs=1)
    crit = GateCriterion(metric="m0@10", role="primary", direction="higher")
    rng = np.random.default_rng(3)
    passed, n_sims = 0, 300
    for sim in range(n_sims):
        base = rng.beta(2, 5, (n1, 1))
        cand = base + effect + rng.normal(0, sd, (n1, 1))
        verdict, _ = _run(paired_frames(base, cand), [crit], method="t_test", seed=sim)
        passed += verdict.decision == PASS
    assert passed / n_sims == pytest.approx(0.8, abs=0.08)
