"""Intervals respect a metric's range where the method allows (issue 13, item 6).

A confidence set intersected with the parameter space keeps its coverage: if theta
always lies in [a, b], then theta in [L, U] <=> theta in [max(L, a), min(U, b)]. The
tests check the identity by simulation (coverage of the clipped and unclipped intervals
is the same event, replicate by replicate), that clipping only ever shortens, and that
every path that builds an interval (paired means, sum and weighted statistics,
comparisons, families, off-policy) applies the range.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.evaluate.family import FamilyResult, MetricValue, ModelOutput
from harness.inference.paired import compare_family, compare_models
from harness.metrics._names import value_range
from harness.metrics.off_policy import IPS, OPEInputs, estimate_intervals
from harness.metrics.stats import (SumStatistic, TInference, WeightedStatistic, bootstrap_statistics,
                                   bootstrap_weighted, clip_interval, difference_bounds, infer_paired_means,
                                   mean_confidence_interval, mean_statistic, paired_difference,
                                   paired_relative_difference, relative_bounds)


def test_clip_interval_changes_only_the_bounds() -> None:
    inf = TInference(0.01, -0.02, 0.04, "t_test", 0.015, 20, df=19.0)
    clipped = clip_interval(inf, (0.0, 1.0))
    assert (clipped.ci_low, clipped.ci_high) == (0.0, 0.04)
    assert clipped.estimate == inf.estimate and clipped.std_error == inf.std_error
    for m in (-0.01, 0.0, 0.02):
        assert clipped.p_greater(m) == inf.p_greater(m) and clipped.p_less(m) == inf.p_less(m)
    assert clip_interval(inf, None) is inf
    assert clip_interval(inf, (-1.0, 1.0)) is inf  # already inside
    # wholly outside (a debiased estimate below 0): the nearest end of the range
    out = TInference(-0.05, -0.08, -0.02, "t_test", 0.015, 20, df=19.0)
    assert (clip_interval(out, (0.0, 1.0)).ci_low, clip_interval(out, (0.0, 1.0)).ci_high) == (0.0, 0.0)


def test_ranges_of_deltas() -> None:
    assert difference_bounds((0.0, 1.0), (0.0, 1.0)) == (-1.0, 1.0)
    assert difference_bounds((0.0, np.inf), (0.0, 1.0)) == (-1.0, np.inf)
    assert difference_bounds(None, (0.0, 1.0)) is None
    assert relative_bounds((0.0, 1.0), (0.0, 1.0)) == (-1.0, np.inf)
    assert relative_bounds((0.0, 1.0), (0.5, 1.0)) == (-1.0, 1.0)  # c / b - 1 <= 1 / 0.5 - 1
    assert relative_bounds((-1.0, 1.0), (0.0, 1.0)) is None
    assert value_range("ndcg@10") == (0.0, 1.0) and value_range("stage1/dcg@5") == (0.0, np.inf)
    assert value_range("log_loss") == (0.0, np.inf) and value_range("ips") is None


def _binary_pair(rng: np.random.Generator, n: int, p_c: float, p_b: float) -> tuple[np.ndarray, np.ndarray]:
    return (rng.random(n) < p_c).astype(float), (rng.random(n) < p_b).astype(float)


@pytest.mark.parametrize("method", ["t_test", "randomization"])
def test_small_samples_of_a_rate_stay_in_range(method) -> None:
    c, b = np.array([1.0, 0.0, 1.0, 1.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0, 0.0])  # d in {-1, 1}
    (raw,), (raw_rel,) = infer_paired_means(c, b, method=method)
    (inf,), (rel,) = infer_paired_means(c, b, method=method, bounds=[(0.0, 1.0)])
    if method == "t_test":
        assert raw.ci_high > 1.0  # 0.6 + 2.776 * 0.894 / sqrt(5): beyond the range of a delta of rates
    assert -1.0 <= inf.ci_low <= inf.estimate <= inf.ci_high <= 1.0
    assert inf.ci_low == max(raw.ci_low, -1.0) and inf.ci_high == min(raw.ci_high, 1.0)
    assert rel.ci_low >= -1.0 and rel.ci_high == raw_rel.ci_high
    assert inf.p_two_sided(0.0) == raw.p_two_sided(0.0)


@pytest.mark.slow
def test_clipping_keeps_coverage_and_shortens_intervals_in_simulation() -> None:
    """t intervals of a rare rate (hit rate 3%, n = 30) and of the delta of two rates
    (n = 8): the clipped and the raw interval cover the truth in exactly the same runs
    (the truth is inside the range), the clipped ones are never longer and often
    shorter. 2000 runs; coverage reported with its Monte Carlo SE."""
    rng = np.random.default_rng(20)
    runs = 2000
    cov_raw = cov_clip = cov_d_raw = cov_d_clip = 0
    shorter = shorter_d = 0
    for _ in range(runs):
        c, b = _binary_pair(rng, 30, 0.03, 0.03)
        raw_lo, raw_hi = mean_confidence_interval(c)
        lo, hi = mean_confidence_interval(c, bounds=(0.0, 1.0))
        cov_raw += raw_lo <= 0.03 <= raw_hi
        cov_clip += lo <= 0.03 <= hi
        assert hi - lo <= raw_hi - raw_lo or np.isnan(raw_lo)
        shorter += hi - lo < raw_hi - raw_lo
        c, b = _binary_pair(rng, 8, 0.7, 0.4)
        (raw,), _ = infer_paired_means(c, b, method="t_test")
        (clip,), _ = infer_paired_means(c, b, method="t_test", bounds=[(0.0, 1.0)])
        cov_d_raw += raw.ci_low <= 0.3 <= raw.ci_high
        cov_d_clip += clip.ci_low <= 0.3 <= clip.ci_high
        shorter_d += clip.ci_high - clip.ci_low < raw.ci_high - raw.ci_low
    assert cov_clip == cov_raw and cov_d_clip == cov_d_raw  # the same event in every run
    assert shorter > 0.3 * runs and shorter_d > 0.1 * runs
    # the t interval of a rare rate under-covers (a known limit of t, not of clipping:
    # no click in 40% of the runs gives the empty interval [0, 0]); the delta of two
    # rates at n = 8 covers 90-95%
    se = np.sqrt(0.25 / runs)
    assert cov_d_clip / runs > 0.88 - 2 * se


def test_sum_and_weighted_statistics_carry_their_range() -> None:
    rng = np.random.default_rng(3)
    x = rng.random(25) * 0.1
    # a statistic whose resamples leave its range: a shifted mean, clipped to [0, 1]
    shifted = SumStatistic(x[:, None], lambda s, t: s[..., 0] / t - 0.04, "shifted", bounds=(0.0, 1.0))
    (raw,) = bootstrap_statistics([SumStatistic(x[:, None], shifted.combine, "raw")], n_resamples=500)
    (inf,) = bootstrap_statistics([shifted], n_resamples=500)
    assert raw.ci_low < 0 and inf.ci_low == 0.0 and inf.ci_high == raw.ci_high
    diff = paired_difference(mean_statistic(x, bounds=(0.0, 1.0)), mean_statistic(x[::-1], bounds=(0.0, 1.0)))
    assert diff.bounds == (-1.0, 1.0)
    assert paired_relative_difference(mean_statistic(x, bounds=(0.0, 1.0)),
                                      mean_statistic(x, bounds=(0.0, 1.0))).bounds == (-1.0, np.inf)
    weighted = WeightedStatistic(lambda w: (w * x).sum(1) / w.sum(1) - 0.04, 25, bounds=(0.0, 1.0))
    (winf,) = bootstrap_weighted([weighted], n_resamples=500)
    assert winf.ci_low == 0.0


def test_compare_models_and_families_keep_deltas_in_range() -> None:
    rng = np.random.default_rng(5)
    base = pd.DataFrame({"hit_rate@10": (rng.random(6) < 0.3).astype(float),
                         "revenue": rng.lognormal(0, 1, 6)})
    cand = pd.DataFrame({"hit_rate@10": np.array([1.0, 1, 1, 1, 1, 0]), "revenue": rng.lognormal(0, 1, 6)})
    base["hit_rate@10"] = [0.0, 0, 0, 0, 1, 1]
    per_unit = {"b": base, "c": cand}
    raw = {r.metric: r for r in compare_models(per_unit, baseline="b", candidates=["c"],
                                               metrics=["hit_rate@10", "revenue"], method="t_test")}
    assert raw["hit_rate@10"].ci_high > 1.0
    rows = {r.metric: r for r in compare_models(per_unit, baseline="b", candidates=["c"],
                                                metrics=["hit_rate@10", "revenue"], method="t_test",
                                                bounds={"hit_rate@10": (0.0, 1.0)})}
    assert rows["hit_rate@10"].ci_high == 1.0 and rows["hit_rate@10"].ci_low == raw["hit_rate@10"].ci_low
    assert rows["revenue"].ci_low == raw["revenue"].ci_low  # no range given: untouched
    # a family's comparison looks the range up by metric name
    outputs = {m: ModelOutput(per_unit=t, values=[MetricValue("hit_rate@10", float(t["hit_rate@10"].mean()))])
               for m, t in per_unit.items()}
    result = FamilyResult("ranking", "query", ["hit_rate@10", "revenue"], outputs)
    fam = {r.metric: r for r in compare_family(result, baseline="b", candidates=["c"], method="t_test")}
    assert fam["hit_rate@10"].ci_high == 1.0 and fam["hit_rate@10"].relative_ci_low >= -1.0
    assert fam["revenue"].ci_high == raw["revenue"].ci_high


def test_off_policy_intervals_can_take_the_reward_range() -> None:
    rng = np.random.default_rng(8)
    n = 300
    reward = np.zeros(n)
    reward[[3, 150]] = 1.0  # 2 clicks in 300 rows
    data = OPEInputs(reward=reward, pscore=np.full(n, 0.5), pi_e=rng.uniform(0.0, 1.0, n))
    raw = IPS().estimate_interval(data)
    assert raw.low < 0  # the analytic interval of a rare click rate
    clipped = IPS().estimate_interval(data, bounds=(0.0, 1.0))
    assert clipped.low == 0.0 and clipped.high == raw.high and clipped.estimate == raw.estimate
    boot = estimate_intervals([IPS()], data, method="bootstrap", n_bootstrap=200, bounds=(0.0, 1.0))["ips"]
    assert 0.0 <= boot.low <= boot.high <= 1.0
