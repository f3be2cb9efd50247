"""The gate's decision rules on hand-built comparisons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.errors import ConfigError, DataValidationError
from harness.inference.gate import FAIL, INCONCLUSIVE, NO_GATE, PASS, comparison_rows, decide
from harness.metrics.stats import holm_adjust, minimum_detectable_effect, required_units


pytestmark = pytest.mark.usefixtures("one_blas_thread")


def frames(deltas: dict[str, np.ndarray], *, n: int = 400, seed: int = 0, extra: dict | None = None):
    """Baseline and candidates with per-unit deltas ``deltas[candidate]`` (n, n_metrics)."""
    rng = np.random.default_rng(seed)
    index = pd.Index([f"u{i}" for i in range(n)])
    cols = ["ndcg@10", "recall@100", "mrr@10"]
    base = rng.beta(3, 4, (n, 3))
    out = {"prod": pd.DataFrame(base, index=index, columns=cols)}
    for name, d in deltas.items():
        out[name] = pd.DataFrame(base + d, index=index, columns=cols)
    return out


def noisy(mean: tuple[float, float, float], sd: float, n: int = 400, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(mean) + rng.normal(0, sd, (n, 3))


def t_compare(per_unit, candidates=("cand",)):
    return compare_models(per_unit, baseline="prod", candidates=list(candidates),
                          metrics=["ndcg@10", "recall@100", "mrr@10"], method="t_test")


PRIMARY = GateCriterion(metric="ndcg@10", role="primary", direction="higher")
GUARD = GateCriterion(metric="recall@100", role="guardrail", direction="higher", max_regression=0.01)


def test_clear_improvement_passes_and_p_values_are_the_one_sided_t_tests():
    d = noisy((0.05, 0.0, 0.0), 0.05)
    comps = t_compare(frames({"cand": d}))
    verdict = decide([PRIMARY, GUARD], comps)
    assert verdict.decision == PASS
    prim, guard = verdict.criteria
    assert prim.p_value == pytest.approx(sps.ttest_1samp(d[:, 0], 0.0, alternative="greater").pvalue)
    # non-inferiority: H1 delta > -0.01
    assert guard.p_value == pytest.approx(sps.ttest_1samp(d[:, 1], -0.01, alternative="greater").pvalue)
    assert guard.p_regression == pytest.approx(sps.ttest_1samp(d[:, 1], -0.01, alternative="less").pvalue)
    # intersection-union: PASS needs both, so the pass p-values are not adjusted
    assert [prim.p_adjusted, guard.p_adjusted] == [prim.p_value, guard.p_value]
    np.testing.assert_allclose([prim.p_regression_adjusted, guard.p_regression_adjusted],
                               holm_adjust([prim.p_regression, guard.p_regression]))
    assert "shown to improve by more than 0" in prim.reason


def test_guardrail_regression_beyond_margin_fails():
    comps = t_compare(frames({"cand": noisy((0.05, -0.05, 0.0), 0.05)}))
    verdict = decide([PRIMARY, GUARD], comps)
    assert verdict.decision == FAIL
    assert [c.outcome for c in verdict.criteria] == [PASS, FAIL]
    assert "regression beyond the margin 0.01" in verdict.criteria[1].reason


def test_lower_is_better_flips_the_direction():
    crit = GateCriterion(metric="mrr@10", role="guardrail", direction="lower", max_regression=0.01)
    up = decide([crit], t_compare(frames({"cand": noisy((0, 0, 0.05), 0.05)})))
    down = decide([crit], t_compare(frames({"cand": noisy((0, 0, -0.05), 0.05)})))
    assert (up.decision, down.decision) == (FAIL, PASS)


def test_noise_is_inconclusive_with_mde_and_units_needed():
    d = noisy((0.004, 0.0, 0.0), 0.2)
    comps = t_compare(frames({"cand": d}))
    verdict = decide([PRIMARY, GUARD], comps)
    assert verdict.decision == INCONCLUSIVE
    prim = verdict.criteria[0]
    assert prim.outcome == INCONCLUSIVE
    se = d[:, 0].std(ddof=1) / np.sqrt(d.shape[0])
    # the pass side is an intersection-union test: each criterion at alpha itself
    assert prim.mde == pytest.approx(minimum_detectable_effect(se, alpha=0.05))
    assert prim.units_needed == required_units(d[:, 0].mean(), se, d.shape[0], alpha=0.05)
    assert prim.units_needed > d.shape[0]
    assert "units" in prim.reason and "detectable margin" in prim.reason


def test_observed_regression_says_more_data_would_not_pass():
    d = noisy((-0.01, 0.0, 0.0), 0.3)
    verdict = decide([PRIMARY], t_compare(frames({"cand": d})))
    (prim,) = verdict.criteria
    assert prim.outcome == INCONCLUSIVE and prim.units_needed is None
    assert "more data would not make it PASS" in prim.reason and "confirm the regression" in prim.reason


def test_relative_margin_uses_the_relative_inference():
    crit = GateCriterion(metric="mrr@10", role="guardrail", direction="higher", max_regression=0.05,
                         relative=True)
    comps = t_compare(frames({"cand": noisy((0, 0, -0.005), 0.05)}))
    verdict = decide([crit], comps)
    (res,) = verdict.criteria
    comp = next(c for c in comps if c.metric == "mrr@10")
    assert res.delta == pytest.approx(comp.relative_delta)
    assert res.margin == 0.05
    assert res.p_value == pytest.approx(comp.relative_inference.p_greater(-0.05))
    assert res.outcome == PASS
    assert "(relative)" in res.criterion


def test_family_spans_candidates_and_criteria():
    per_unit = frames({"a": noisy((0.02, 0, 0), 0.1, seed=2), "b": noisy((0.01, 0, 0), 0.1, seed=3)})
    comps = t_compare(per_unit, candidates=("a", "b"))
    crits = [PRIMARY, GUARD]
    for correction, adjust in (("holm", holm_adjust), ("bh", lambda p: sps.false_discovery_control(p)),
                               ("none", lambda p: np.asarray(p))):
        verdict = decide(crits, comps, correction=correction)
        assert len(verdict.criteria) == 4 and verdict.correction == correction
        raw = [c.p_value for c in verdict.criteria]
        # pass side: intersection-union, never adjusted; fail side: the chosen correction
        np.testing.assert_allclose([c.p_adjusted for c in verdict.criteria], raw)
        np.testing.assert_allclose([c.p_regression_adjusted for c in verdict.criteria],
                                   adjust([c.p_regression for c in verdict.criteria]))


def test_note_forces_inconclusive():
    per_unit = frames({"cand": noisy((0.05, 0, 0), 0.05)})
    comps = compare_models(per_unit, baseline="prod", candidates=["cand"], metrics=["ndcg@10"],
                           method="t_test", notes={("cand", "ndcg@10"): "effective sample size 12 < 100"})
    verdict = decide([PRIMARY], comps)
    assert verdict.decision == INCONCLUSIVE
    assert "effective sample size 12 < 100" in verdict.reasons[0]


def test_comparison_rows_carry_the_criterion_outcome():
    comps = t_compare(frames({"cand": noisy((0.05, 0, 0), 0.05)}))
    verdict = decide([PRIMARY], comps)
    rows = comparison_rows(comps, verdict)
    keys = {"metric", "baseline", "candidate", "delta", "relative_delta", "ci_low", "ci_high", "p_value",
            "p_adjusted", "criterion", "outcome"}
    assert all(keys <= set(r) for r in rows)
    gated = next(r for r in rows if r["metric"] == "ndcg@10")
    assert gated["outcome"] == PASS and gated["p_adjusted"] == verdict.criteria[0].p_adjusted
    assert next(r for r in rows if r["metric"] == "mrr@10")["outcome"] is None


def test_no_criteria_decides_nothing():
    verdict = decide([], [])
    assert verdict.decision == NO_GATE != PASS
    assert verdict.to_dict()["reasons"] == ["no gate: nothing decided (no gate criteria configured)"]


def test_bad_gate_input_is_refused():
    comps = t_compare(frames({"cand": noisy((0, 0, 0), 0.05)}))
    with pytest.raises(ConfigError, match="'map@100' was not compared for 'cand'"):
        decide([GateCriterion(metric="map@100", role="primary")], comps)
    with pytest.raises(ConfigError, match="correction"):
        decide([PRIMARY], comps, correction="sidak")
    zero = frames({"cand": noisy((0, 0, 0), 0.05)})
    zero["prod"]["mrr@10"] = 0.0
    zero["cand"]["mrr@10"] = np.abs(zero["cand"]["mrr@10"])
    rel = GateCriterion(metric="mrr@10", role="guardrail", max_regression=0.1, relative=True)
    with pytest.raises(DataValidationError, match="scores 0"):
        decide([rel], t_compare(zero))
