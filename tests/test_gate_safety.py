"""Gate safety (issue 13): decision precedence, intersection-union on the pass side,
no-criteria runs, the resample floor and the advice an INCONCLUSIVE criterion gives.

Simulations are seeded and small; each states its Monte Carlo standard error. Larger
versions: ``benchmarks/gate_safety.py``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats as sps

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.inference.gate import FAIL, INCONCLUSIVE, NO_GATE, PASS, comparison_rows, decide
from harness.metrics.stats import (ResampleFloorWarning, holm_adjust, recommended_resamples,
                                   resamples_to_reach, smallest_level)
from tests.conftest import paired_frames

ALPHA = 0.05


pytestmark = pytest.mark.usefixtures("one_blas_thread")




def _pair(shift: np.ndarray, *, n: int = 400, sd: float = 0.1, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.beta(2, 5, (n, len(shift)))
    return base, base + np.asarray(shift) + rng.normal(0, sd, base.shape)


def _primaries(k: int) -> list[GateCriterion]:
    return [GateCriterion(metric=f"m{j}@10", role="primary", direction="higher") for j in range(k)]


# ----------------------------------------------------------------------------- precedence


def test_low_overlap_note_never_hides_a_regression():
    """Issue 13, case 1: a note used to win over FAIL, so --inconclusive pass let a
    significant regression through."""
    base, cand = _pair([-0.05])
    note = {("cand", "m0@10"): "low effective sample size 40 < 100: too little overlap"}
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"], metrics=["m0@10"],
                           method="t_test", notes=note)
    verdict = decide(_primaries(1), comps)
    assert comps[0].inference.p_less(0.0) < 1e-6
    assert verdict.decision == FAIL and verdict.criteria[0].outcome == FAIL


@pytest.mark.parametrize("shift", [0.05, 0.004])
def test_low_overlap_note_blocks_a_pass(shift):
    base, cand = _pair([shift])
    note = {("cand", "m0@10"): "Pareto k-hat 0.93 > 0.7"}
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"], metrics=["m0@10"],
                           method="t_test", notes=note)
    verdict = decide(_primaries(1), comps)
    assert verdict.decision == INCONCLUSIVE
    assert "cannot PASS on this data: Pareto k-hat 0.93 > 0.7" in verdict.reasons[0]


def test_fail_beats_inconclusive_beats_pass_across_criteria():
    base, cand = _pair([0.05, 0.0, -0.05])
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                           metrics=["m0@10", "m1@10", "m2@10"], method="t_test")
    crits = _primaries(3)
    assert [c.outcome for c in decide(crits, comps).criteria] == [PASS, INCONCLUSIVE, FAIL]
    assert decide(crits, comps).decision == FAIL
    assert decide(crits[:2], comps).decision == INCONCLUSIVE
    assert decide(crits[:1], comps).decision == PASS


def test_no_criteria_is_no_gate_not_pass():
    verdict = decide([], [])
    assert verdict.decision == NO_GATE
    assert verdict.reasons == ["no gate: nothing decided (no gate criteria configured)"]
    assert verdict.to_dict()["decision"] == "NO_GATE" and verdict.criteria == []


# ----------------------------------------------------------------------------- intersection-union


def test_pass_side_is_not_adjusted_and_fail_side_is():
    base, cand = _pair([0.012, 0.012, -0.05], seed=3)
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                           metrics=["m0@10", "m1@10", "m2@10"], method="t_test")
    verdict = decide(_primaries(3), comps, correction="holm")
    for c in verdict.criteria:
        assert c.p_adjusted == c.p_value
    np.testing.assert_allclose([c.p_regression_adjusted for c in verdict.criteria],
                               holm_adjust([c.p_regression for c in verdict.criteria]))
    rows = {r["metric"]: r for r in comparison_rows(comps, verdict)}
    failed = next(c for c in verdict.criteria if c.metric == "m2@10")
    assert failed.outcome == FAIL
    # a FAIL row reports the test that failed it, not the pass-side p
    assert rows["m2@10"]["p_adjusted"] == failed.p_regression_adjusted and rows["m2@10"]["p_test"] == "regression"
    assert rows["m0@10"]["p_adjusted"] == verdict.criteria[0].p_value and rows["m0@10"]["p_test"] == "pass"


@pytest.mark.slow
def test_intersection_union_size_at_the_least_favourable_null():
    """Berger (1982): PASS has size <= alpha without adjustment. Least favourable
    configuration: one criterion exactly at its null (true delta 0), the others far
    better. 400 seeded runs: PASS rate 0.040 (MC SE 0.011), bound 0.05 + 2 SE."""
    rng = np.random.default_rng(20261)
    crits, n_sims, passed = _primaries(4), 400, 0
    for sim in range(n_sims):
        base = rng.beta(2, 5, (200, 4))
        cand = base + np.array([0.0, 0.1, 0.1, 0.1]) + rng.normal(0, 0.1, base.shape)
        comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                               metrics=[c.metric for c in crits], method="t_test", seed=sim)
        passed += decide(crits, comps).decision == PASS
    rate, se = passed / n_sims, np.sqrt(ALPHA * (1 - ALPHA) / n_sims)
    assert rate <= ALPHA + 2 * se, rate


@pytest.mark.slow
def test_intersection_union_gains_power_over_a_holm_adjusted_pass_side():
    """Six primaries, each true delta at 90% one-sided power: PASS needs all six. Power
    before (pass side Holm-adjusted, the old gate) and after (intersection-union).
    300 seeded runs; MC SE of each rate <= 0.029, of the paired difference ~0.014
    (sqrt(discordant fraction / 300)). Measured: before 0.470, after 0.527."""
    k, n, sd = 6, 200, 0.1
    effect = (sps.norm.ppf(1 - ALPHA) + sps.norm.ppf(0.9)) * sd / np.sqrt(n)
    rng = np.random.default_rng(77)
    crits, n_sims = _primaries(k), 300
    before = after = 0
    for sim in range(n_sims):
        base = rng.beta(2, 5, (n, k))
        cand = base + effect + rng.normal(0, sd, base.shape)
        comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                               metrics=[c.metric for c in crits], method="t_test", seed=sim)
        verdict = decide(crits, comps)
        after += verdict.decision == PASS
        no_fail = all(c.outcome != FAIL for c in verdict.criteria)
        before += no_fail and bool((holm_adjust([c.p_value for c in verdict.criteria]) < ALPHA).all())
    before, after = before / n_sims, after / n_sims
    se = np.sqrt(0.25 / n_sims)
    assert after == pytest.approx(0.9**k, abs=3 * se), after  # 0.531 if independent
    assert after - before > 0.02, (before, after)  # 0.057 measured, > 2.5 SE of the difference


# ----------------------------------------------------------------------------- resample floor


def test_resample_floor_helpers():
    assert smallest_level(0.05, 6, "holm") == pytest.approx(0.05 / 6)
    assert smallest_level(0.05, 6, "none") == 0.05
    b = resamples_to_reach(0.05 / 6)
    assert 1 / (b + 1) < 0.05 / 6 <= 1 / b
    assert recommended_resamples(6) == 2399 and recommended_resamples(1) == 2000
    assert 1 / (recommended_resamples(17 * 6) + 1) < 0.05 / (17 * 6) / 19


def test_few_resamples_pass_a_clear_win_but_warn_that_no_regression_could_fail():
    """Issue 13, case 3: B = 100, six primaries, a candidate ~35 SE better was
    INCONCLUSIVE (0.0099 x 6 > 0.05). Intersection-union lets it PASS; the fail side
    still cannot reach alpha / 6, and the gate says so."""
    base, cand = _pair([0.2] * 6, n=400, sd=0.1)
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                           metrics=[f"m{j}@10" for j in range(6)], method="bootstrap", n_resamples=100)
    with pytest.warns(ResampleFloorWarning, match=r"n_resamples >= 120 \(recommended 2,399\)"):
        verdict = decide(_primaries(6), comps)
    assert verdict.decision == PASS
    assert verdict.resample_limited and all(c.resample_limited for c in verdict.criteria)
    assert verdict.criteria[0].p_floor == pytest.approx(1 / 101)
    assert "FAIL needs p < 0.00833 (holm over 6 tests)" in verdict.warnings[0]


def test_a_regression_the_resample_count_cannot_fail_says_so_and_enough_resamples_fail_it():
    base, cand = _pair([-0.2] * 6, n=400, sd=0.1)
    metrics = [f"m{j}@10" for j in range(6)]
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"], metrics=metrics,
                           method="bootstrap", n_resamples=100)
    with pytest.warns(ResampleFloorWarning):
        verdict = decide(_primaries(6), comps)
    assert verdict.decision == INCONCLUSIVE
    reason = verdict.criteria[0].reason
    assert "to confirm the regression: the smallest p-value bootstrap can give" in reason
    assert "n_resamples >= 120" in reason and "units" not in reason.split("confirm the regression")[1]
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"], metrics=metrics,
                           method="bootstrap", n_resamples=recommended_resamples(6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleFloorWarning)
        verdict = decide(_primaries(6), comps)
    assert verdict.decision == FAIL and not verdict.resample_limited


def test_pass_side_floor_blocks_with_resample_advice_not_units():
    """B = 15: 1/16 > alpha, nothing can PASS; the advice must not claim that a number of
    units (smaller than the one at hand, as the issue found) would settle it."""
    base, cand = _pair([0.2], n=400, sd=0.1)
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"], metrics=["m0@10"],
                           method="bootstrap", n_resamples=15)
    with pytest.warns(ResampleFloorWarning):
        verdict = decide(_primaries(1), comps)
    (crit,) = verdict.criteria
    assert crit.outcome == INCONCLUSIVE and crit.units_needed is None
    assert "more data cannot make it PASS" in crit.reason and "n_resamples >= 20" in crit.reason


def test_t_test_has_no_floor_and_never_warns():
    base, cand = _pair([0.2] * 6, n=400, sd=0.1)
    comps = compare_models(paired_frames(base, cand), baseline="prod", candidates=["cand"],
                           metrics=[f"m{j}@10" for j in range(6)], method="t_test")
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResampleFloorWarning)
        verdict = decide(_primaries(6), comps)
    assert verdict.decision == PASS and not verdict.resample_limited and verdict.warnings == []
