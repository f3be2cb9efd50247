"""metrics/stats.py against scipy and plain references on small cases."""

from __future__ import annotations


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from harness.errors import ConfigError, DataValidationError
from harness.metrics import _resample, stats
from harness.metrics.stats import (SumStatistic, adjust_p_values, bh_adjust, bootstrap_statistics,
                                   bootstrap_sums, holm_adjust, infer_paired_deltas, infer_paired_means,
                                   mean_statistic, minimum_detectable_effect, paired_difference,
                                   paired_relative_difference, power_at, ratio_statistic, required_units,
                                   sign_flip_means)


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    b = rng.gamma(2.0, 0.2, 40)
    return b + rng.normal(0.02, 0.1, 40), b


# ----------------------------------------------------------------------------- t test


def test_t_test_matches_scipy_ttest_rel(pair):
    c, b = pair
    (inf,), _ = infer_paired_means(c, b, method="t_test", confidence=0.9)
    ref = sps.ttest_rel(c, b)
    ci = ref.confidence_interval(confidence_level=0.9)
    assert inf.ci_low == pytest.approx(ci.low, rel=1e-12)
    assert inf.ci_high == pytest.approx(ci.high, rel=1e-12)
    assert inf.p_greater(0.0) == pytest.approx(sps.ttest_rel(c, b, alternative="greater").pvalue, rel=1e-10)
    assert inf.p_less(0.0) == pytest.approx(sps.ttest_rel(c, b, alternative="less").pvalue, rel=1e-10)
    assert inf.p_two_sided() == pytest.approx(ref.pvalue, rel=1e-10)
    # a margin shifts the null: H0 delta = m is the t-test of d - m
    assert inf.p_greater(0.01) == pytest.approx(
        sps.ttest_1samp(c - b, 0.01, alternative="greater").pvalue, rel=1e-10)


def test_relative_delta_method_matches_plain_formula(pair):
    c, b = pair
    _, (rel,) = infer_paired_means(c, b, method="t_test")
    n = c.size
    cov = np.cov(np.vstack([c, b])) / n  # covariance of the two means
    cm, bm = c.mean(), b.mean()
    # gradient of c/b at the means: (1/b, -c/b^2)
    grad = np.array([1 / bm, -cm / bm**2])
    assert rel.estimate == pytest.approx(cm / bm - 1, rel=1e-12)
    assert rel.std_error == pytest.approx(np.sqrt(grad @ cov @ grad), rel=1e-10)


# ----------------------------------------------------------------------------- bootstrap


@pytest.mark.parametrize("method, scipy_method", [("bootstrap", "percentile"), ("bca", "bca")])
def test_bootstrap_of_mean_delta_equals_scipy_resample_for_resample(pair, method, scipy_method):
    c, b = pair
    (inf,), _ = infer_paired_means(c, b, method=method, n_resamples=999, seed=11, confidence=0.9)
    ref = sps.bootstrap((c, b), lambda x, y, axis=-1: (x - y).mean(axis=axis), paired=True, n_resamples=999,
                        method=scipy_method, confidence_level=0.9, rng=np.random.default_rng(11))
    assert inf.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-10)
    assert inf.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-10)
    assert inf.std_error == pytest.approx(ref.standard_error, rel=1e-10)
    np.testing.assert_allclose(np.sort(inf.replicates), np.sort(ref.bootstrap_distribution), rtol=1e-10)


@pytest.mark.parametrize("method, scipy_method", [("bootstrap", "percentile"), ("bca", "bca")])
def test_ratio_statistic_difference_equals_scipy(method, scipy_method):
    """SNIPS-style ratio of sums for two policies on the same logged rounds."""
    rng = np.random.default_rng(3)
    n = 50
    r = rng.binomial(1, 0.3, n).astype(float)
    w1, w2 = rng.gamma(2, 0.5, n), rng.gamma(2, 0.5, n)
    stat = paired_difference(ratio_statistic(w2 * r, w2), ratio_statistic(w1 * r, w1))
    (inf,) = bootstrap_statistics([stat], method=method, n_resamples=999, seed=5)

    def snips_delta(r_, w1_, w2_, axis=-1):
        return (w2_ * r_).sum(axis) / w2_.sum(axis) - (w1_ * r_).sum(axis) / w1_.sum(axis)

    ref = sps.bootstrap((r, w1, w2), snips_delta, paired=True, n_resamples=999, method=scipy_method,
                        rng=np.random.default_rng(5))
    assert inf.estimate == pytest.approx(snips_delta(r, w1, w2), rel=1e-12)
    assert inf.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-9)
    assert inf.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-9)


def test_relative_bootstrap_resamples_the_baseline(pair):
    c, b = pair
    _, (rel,) = infer_paired_means(c, b, method="bootstrap", n_resamples=999, seed=2)
    ref = sps.bootstrap((c, b), lambda x, y, axis=-1: x.mean(axis) / y.mean(axis) - 1, paired=True,
                        n_resamples=999, method="percentile", rng=np.random.default_rng(2))
    assert rel.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-10)
    assert rel.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-10)
    # with deltas independent of a noisy baseline, dividing the delta interval by a
    # fixed baseline mean would understate the uncertainty of the ratio threefold
    rng = np.random.default_rng(1)
    b2 = rng.normal(1.0, 1.0, 400)
    c2 = b2 + rng.normal(0.3, 0.1, 400)
    (delta,), (rel2,) = infer_paired_means(c2, b2, method="bootstrap", n_resamples=999, seed=2)
    assert rel2.ci_high - rel2.ci_low > 2.5 * (delta.ci_high - delta.ci_low) / b2.mean()


def test_chunked_multinomial_draws_are_the_same_resamples(monkeypatch, pair):
    c, b = pair
    whole = bootstrap_sums(np.column_stack([c, b]), n_resamples=300, seed=4, weights="multinomial")[0]
    monkeypatch.setattr(_resample, "MAX_CELLS", 7 * c.size)  # 7 resamples a chunk
    chunked = bootstrap_sums(np.column_stack([c, b]), n_resamples=300, seed=4, weights="multinomial")[0]
    np.testing.assert_allclose(whole, chunked, rtol=1e-13)  # same resamples, summed in another order


def test_poisson_bootstrap_agrees_in_distribution_with_the_plain_formula():
    rng = np.random.default_rng(0)
    x = rng.exponential(1.0, 4000)
    sums, totals = bootstrap_sums(x, n_resamples=2000, seed=1, weights="poisson")
    means = sums[:, 0] / totals
    assert totals.mean() == pytest.approx(x.size, rel=0.01)
    assert totals.var() == pytest.approx(x.size, rel=0.1)  # Var(sum of Poisson(1)) = n
    assert means.std() == pytest.approx(x.std(ddof=1) / np.sqrt(x.size), rel=0.06)
    reps = stats.bootstrap_mean_replicates(x, n_resamples=2000, seed=1, weights="poisson")
    np.testing.assert_allclose(reps[:, 0], means, rtol=1e-12)


@pytest.mark.parametrize("k", [2, 12])  # the fused pass and the float32 BLAS blocks
def test_poisson_sums_use_the_generator_weights(monkeypatch, k):
    """Sums equal the float64 product of the weights the generator defines, in either path."""
    rng = np.random.default_rng(9)
    x = rng.normal(5.0, 1.0, (3001, k))
    monkeypatch.setattr(_resample, "MAX_CELLS", 100 * 1000)  # blocks of 1000 units
    sums, totals = bootstrap_sums(x, n_resamples=100, seed=3, weights="poisson")
    w = _resample.poisson_weights(3, 0, 100, 0, 3001)
    np.testing.assert_array_equal(totals, w.sum(axis=1))
    if k > _resample.FUSED_MAX_COLUMNS:  # float32 products of centred parts
        assert (np.abs(sums - w @ x) <= 1e-4 * (w @ np.abs(x - x.mean(axis=0)))).all()
    else:
        np.testing.assert_allclose(sums, w @ x, rtol=1e-12)


def test_bootstrap_p_value_is_dual_to_the_interval(pair):
    c, b = pair
    for method in ("bootstrap", "bca"):
        (inf,), _ = infer_paired_means(c, b, method=method, n_resamples=4000, seed=8, confidence=0.9)
        # the lower 90% two-sided bound is the 95% one-sided bound: p there is about 0.05
        assert inf.p_greater(inf.ci_low) == pytest.approx(0.05, abs=0.01)
        assert inf.p_less(inf.ci_high) == pytest.approx(0.05, abs=0.01)
        assert inf.p_greater(inf.ci_low - 10 * inf.std_error) < 0.001


def test_undefined_statistic_is_refused():
    bad = SumStatistic(np.column_stack([np.ones(20), np.zeros(20)]),
                       lambda s, t: np.divide(s[..., 0], s[..., 1], out=np.full(s.shape[:-1], np.nan),
                                              where=s[..., 1] != 0))
    with pytest.raises(DataValidationError, match="undefined"):
        bootstrap_statistics([bad], n_resamples=50)


# ----------------------------------------------------------------------------- sign flips


@pytest.mark.parametrize("n", [6, 12])
def test_sign_flip_exact_p_values_match_scipy_permutation_test(n):
    rng = np.random.default_rng(n)
    d = rng.normal(0.3, 1.0, n)
    (inf,) = infer_paired_deltas(d, method="randomization")
    for alt, ours in (("greater", inf.p_greater(0.0)), ("less", inf.p_less(0.0))):
        ref = sps.permutation_test((d,), np.mean, permutation_type="samples", alternative=alt,
                                   n_resamples=np.inf)
        assert ours == pytest.approx(ref.pvalue, rel=1e-12)
    # margin m: the test of d - m
    ref = sps.permutation_test((d - 0.2,), np.mean, permutation_type="samples", alternative="greater",
                               n_resamples=np.inf)
    assert inf.p_greater(0.2) == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_monte_carlo_is_close_to_exact():
    rng = np.random.default_rng(1)
    d = rng.normal(0.4, 1.0, 16)  # above the exact limit: Monte Carlo
    (inf,) = infer_paired_deltas(d, method="randomization", n_resamples=20000, seed=2)
    exact = sps.permutation_test((d,), np.mean, permutation_type="samples", alternative="greater",
                                 n_resamples=np.inf).pvalue
    assert inf.p_greater(0.0) == pytest.approx(exact, abs=0.01)


def test_randomization_interval_is_the_set_of_unrejected_margins(pair):
    c, b = pair
    (inf,), (rel,) = infer_paired_means(c, b, method="randomization", n_resamples=5000, seed=3)
    for est in (inf, rel):
        eps = 1e-6 * max(est.std_error, 1e-9)
        assert est.ci_low < est.estimate < est.ci_high
        assert est.p_greater(est.ci_low - eps) <= 0.025 < est.p_greater(est.ci_low + eps)
        assert est.p_less(est.ci_high + eps) <= 0.025 < est.p_less(est.ci_high - eps)


def test_randomization_interval_with_mixed_sign_baseline_uses_bisection():
    """Baseline values of both signs: the flips' slopes differ in sign, no closed form."""
    rng = np.random.default_rng(2)
    b = rng.normal(0.25, 1.0, 100)
    c = b + rng.normal(0.1, 0.3, 100)
    _, (rel,) = infer_paired_means(c, b, method="randomization", n_resamples=3000, seed=1)
    assert (rel.a_v - rel.v_bar > 0).any() and (rel.a_v - rel.v_bar < 0).any()
    assert np.isfinite([rel.ci_low, rel.ci_high]).all()
    eps = 1e-6 * rel.std_error
    assert rel.ci_low < rel.estimate < rel.ci_high
    assert rel.p_greater(rel.ci_low - eps) <= 0.025 < rel.p_greater(rel.ci_low + eps)
    assert rel.p_less(rel.ci_high + eps) <= 0.025 < rel.p_less(rel.ci_high - eps)


def test_relative_randomization_set_is_unbounded_when_the_baseline_mean_is_not_known_positive():
    """As Fieller's set for a ratio: a baseline mean indistinguishable from 0 bounds nothing."""
    rng = np.random.default_rng(2)
    b = rng.normal(0.03, 1.0, 100)
    c = b + rng.normal(0.1, 0.3, 100)
    _, (rel,) = infer_paired_means(c, b, method="randomization", n_resamples=3000, seed=1)
    assert b.mean() > 0 and np.isinf(rel.ci_low) and np.isinf(rel.ci_high)


def test_relative_randomization_tests_c_minus_scaled_b(pair):
    """H0: mean(c)/mean(b) - 1 = m is the sign-flip test of c - (1 + m) b."""
    c, b = pair
    c, b = c[:10], b[:10]
    _, (rel,) = infer_paired_means(c, b, method="randomization")
    ref = sps.permutation_test((c - 1.1 * b,), np.mean, permutation_type="samples", alternative="greater",
                               n_resamples=np.inf)
    assert rel.p_greater(0.1) == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_means_enumerates_every_sign_vector():
    x = np.array([[1.0], [2.0], [4.0]])
    flips, exact = sign_flip_means(x)
    assert exact
    assert sorted(flips[:, 0] * 3) == sorted(s1 + 2 * s2 + 4 * s3 for s1 in (1, -1) for s2 in (1, -1)
                                              for s3 in (1, -1))


# ----------------------------------------------------------------------------- multiplicity, power


def test_holm_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    # sorted 0.005, 0.01, 0.03, 0.04 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(holm_adjust(p), [0.03, 0.06, 0.06, 0.02])


def test_bh_matches_a_plain_reference():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.2, 15)
    m = p.size
    order = np.argsort(p)
    ref = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):  # step-up from the largest p
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        ref[i] = running
    np.testing.assert_allclose(bh_adjust(p), ref)
    np.testing.assert_array_equal(adjust_p_values(p, "none"), p)


def test_power_helpers_by_hand():
    mde = minimum_detectable_effect(1.0, alpha=0.05, power=0.8)
    assert mde == pytest.approx(1.6448536 + 0.8416212, rel=1e-6)
    assert power_at(mde, 1.0, alpha=0.05) == pytest.approx(0.8, rel=1e-9)
    # half the effect needs four times the units
    assert required_units(mde / 2, 1.0, 100) == 400
    assert required_units(-0.1, 1.0, 100) == float("inf")


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(method="anova"), ConfigError, "method"),
    (dict(confidence=1.5), ConfigError, "confidence"),
    (dict(n_resamples=3), ConfigError, "n_resamples"),
    (dict(weights="bayes"), ConfigError, "weights"),
])
def test_bad_options_are_refused(pair, kwargs, error, match):
    c, b = pair
    with pytest.raises(error, match=match):
        infer_paired_means(c, b, **kwargs)


def test_bad_values_are_refused(pair):
    c, b = pair
    bad = c.copy()
    bad[3] = np.nan
    with pytest.raises(DataValidationError, match=r"candidate: 1 NaN .*row 3"):
        infer_paired_means(bad, b)
    with pytest.raises(DataValidationError, match="same shape"):
        infer_paired_means(c[:-1], b)
    with pytest.raises(DataValidationError, match="at least 2 units"):
        infer_paired_means(c[:1], b[:1])
    with pytest.raises(DataValidationError, match="same length"):
        ratio_statistic(c, b[:-1])
    with pytest.raises(DataValidationError, match="same units"):
        paired_relative_difference(mean_statistic(c), mean_statistic(b[:-1]))
    with pytest.raises(ConfigError, match="correction"):
        adjust_p_values(np.array([0.1]), "bonferroni")


def test_constant_delta_gives_a_point_interval_for_every_method():
    """Identical models on some metric: zero spread must not crash BCa or the tests."""
    d = np.full(50, -0.01)
    for method in ("bootstrap", "bca", "t_test", "randomization"):
        (inf,) = infer_paired_deltas(d, method=method, n_resamples=200)
        assert inf.ci_low == pytest.approx(-0.01) and inf.ci_high == pytest.approx(-0.01), method
        assert inf.p_less(0.0) < 0.01 and inf.p_greater(0.0) > 0.99, method


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_adjusted_p_values_order(p_list):
    p = np.array(p_list)
    holm, bh = holm_adjust(p), bh_adjust(p)
    assert (holm >= p - 1e-15).all() and (holm <= 1).all()
    assert (bh >= p - 1e-15).all() and (bh <= holm + 1e-12).all()
    # adjustment keeps the order of the raw p-values
    order = np.argsort(p, kind="stable")
    assert (np.diff(holm[order]) >= -1e-15).all() and (np.diff(bh[order]) >= -1e-15).all()


def _weighted_corr(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson r with unit weights (a weight of k = k copies of the unit), per row of w."""
    sw = w.sum(1)
    mx, my = (w * x).sum(1) / sw, (w * y).sum(1) / sw
    dx, dy = x - mx[:, None], y - my[:, None]
    return (w * dx * dy).sum(1) / np.sqrt((w * dx * dx).sum(1) * (w * dy * dy).sum(1))


@pytest.mark.parametrize("method, scipy_method", [("bootstrap", "percentile"), ("bca", "bca")])
def test_weighted_statistic_difference_equals_scipy(method, scipy_method):
    """A statistic that is no function of column sums (a correlation): weights = counts."""
    rng = np.random.default_rng(8)
    y = rng.normal(size=60)
    p1, p2 = y + rng.normal(0, 1.0, 60), y + rng.normal(0, 0.7, 60)
    s1 = stats.WeightedStatistic(lambda w: _weighted_corr(p1, y, w), 60, "r1")
    s2 = stats.WeightedStatistic(lambda w: _weighted_corr(p2, y, w), 60, "r2")
    (inf,) = stats.bootstrap_weighted([stats.paired_weighted_difference(s2, s1)], method=method,
                                      n_resamples=999, seed=6)

    def delta(y_, a_, b_, axis=-1):
        r = lambda u, v: sps.pearsonr(u, v, axis=axis).statistic  # noqa: E731
        return r(b_, y_) - r(a_, y_)

    ref = sps.bootstrap((y, p1, p2), delta, paired=True, n_resamples=999, method=scipy_method,
                        rng=np.random.default_rng(6))
    assert inf.estimate == pytest.approx(delta(y, p1, p2), rel=1e-12)
    assert inf.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-9)
    assert inf.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-9)


def test_weighted_bca_refuses_huge_jackknives(monkeypatch):
    monkeypatch.setattr(stats, "WEIGHTED_JACKKNIFE_MAX_UNITS", 10)
    s = stats.WeightedStatistic(lambda w: w.sum(1), 20)
    with pytest.raises(ConfigError, match="jackknife of 20 fits"):
        stats.bootstrap_weighted([s], method="bca", n_resamples=50)
