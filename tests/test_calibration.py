"""Calibration metrics: scikit-learn parity, hand cases, slow references, identities,
statistical behaviour on known truth, per-segment consistency, bootstrap, bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import optimize, special
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from harness.errors import ConfigError, DataValidationError
from harness.metrics import calibrated_recs, calibration, calibration_stats
from harness.metrics.calibration_stats import ece_bootstrap
from harness.metrics._binning import bin_edges
from harness.metrics.calibration import (brier_decomposition, brier_score, brier_score_per_row,
                                         calibration_by_segment, calibration_slope_intercept,
                                         calibration_summary, evaluate_calibration,
                                         expected_calibration_error, log_loss, log_loss_per_row,
                                         normalized_entropy, observed_expected_ratio, reliability_curve,
                                         wilson_interval)


def draw(n: int, seed: int, *, shape: tuple[float, float] = (2.0, 5.0)) -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn from the true probabilities p ~ Beta(shape)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(*shape, size=n)
    return (rng.random(n) < p).astype(np.int64), p


# ---------------------------------------------------------------- references

def slow_edges(p: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    if strategy == "uniform":
        return np.linspace(0, 1, n_bins + 1)
    return np.quantile(p, np.linspace(0, 1, n_bins + 1))


def slow_bins(p: np.ndarray, edges: np.ndarray) -> list[np.ndarray]:
    """Row indices per bin: (e_j, e_{j+1}], the first bin also takes everything <= e_1."""
    n_bins = len(edges) - 1
    out = []
    for j in range(n_bins):
        lower_ok = np.ones(len(p), bool) if j == 0 else p > edges[j]
        upper_ok = np.ones(len(p), bool) if j == n_bins - 1 else p <= edges[j + 1]
        out.append(np.flatnonzero(lower_ok & upper_ok))
    return out


def slow_ece(y: np.ndarray, p: np.ndarray, n_bins: int, strategy: str, norm: str) -> float:
    gaps, weights = [], []
    for rows in slow_bins(p, slow_edges(p, n_bins, strategy)):
        if len(rows):
            gaps.append(abs(p[rows].mean() - y[rows].mean()))
            weights.append(len(rows) / len(p))
    gaps_a, w = np.array(gaps), np.array(weights)
    if norm == "l1":
        return float(np.sum(w * gaps_a))
    if norm == "l2":
        return float(np.sqrt(np.sum(w * gaps_a**2)))
    return float(gaps_a.max())


def slow_logistic(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) by scipy BFGS on the negative log-likelihood."""
    x = special.logit(p)

    def nll(theta: np.ndarray) -> float:
        eta = theta[0] + theta[1] * x
        return float(np.sum(np.logaddexp(0, eta) - y * eta))

    def grad(theta: np.ndarray) -> np.ndarray:
        r = special.expit(theta[0] + theta[1] * x) - y
        return np.array([r.sum(), (r * x).sum()])

    res = optimize.minimize(nll, np.array([0.0, 1.0]), jac=grad, method="BFGS", options={"gtol": 1e-10})
    return float(res.x[1]), float(res.x[0])


# ------------------------------------------------------- scikit-learn parity

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_brier_and_log_loss_match_sklearn(seed: int) -> None:
    y, p = draw(3000, seed)
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert log_loss(y, p) == pytest.approx(sk_log_loss(y, y_proba=p, labels=[0, 1]), abs=1e-12)
    assert brier_score_per_row(y, p).mean() == pytest.approx(brier_score(y, p), abs=1e-15)
    assert log_loss_per_row(y, p).mean() == pytest.approx(log_loss(y, p), abs=1e-15)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("n_bins", [1, 5, 15])
def test_reliability_curve_matches_sklearn_calibration_curve(strategy: str, n_bins: int) -> None:
    y, p = draw(2000, n_bins)
    p = np.round(p, 2)  # ties and values exactly on uniform edges
    curve = reliability_curve(y, p, n_bins=n_bins, strategy=strategy)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    filled = curve[curve["count"] > 0]
    np.testing.assert_allclose(filled["observed_rate"], prob_true, rtol=0, atol=1e-12)
    np.testing.assert_allclose(filled["mean_predicted"], prob_pred, rtol=0, atol=1e-12)
    assert curve["count"].sum() == len(y)
    assert len(curve) == n_bins


def test_quantile_edges_equal_numpy_quantile_per_group() -> None:
    rng = np.random.default_rng(5)
    p = np.round(rng.random(999), 3)
    groups = rng.integers(0, 4, size=p.size)
    edges = bin_edges(p, groups, 4, n_bins=7, strategy="quantile")
    for g in range(4):
        np.testing.assert_array_equal(edges[g], np.quantile(p[groups == g], np.linspace(0, 1, 8)))


# ----------------------------------------------------------------- hand cases

def test_ece_uniform_hand_case() -> None:
    # bins [0, .5] and (.5, 1]: {.2 (y0), .4 (y1)} gap |.3 - .5| = .2; {.6, .8 (y1, y1)} gap .3
    y, p = [0, 1, 1, 1], [0.2, 0.4, 0.6, 0.8]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.25, abs=1e-15)
    assert expected_calibration_error(y, p, n_bins=2, norm="max") == pytest.approx(0.3, abs=1e-15)
    assert expected_calibration_error(y, p, n_bins=2, norm="l2") == pytest.approx(math.sqrt(0.065), abs=1e-15)


def test_ece_value_on_an_edge_goes_to_the_lower_bin() -> None:
    # p = .5 sits on the edge of 2 uniform bins: it joins [0, .5] with .1 -> gaps .2 and 0
    y, p = [0, 1, 1], [0.1, 0.5, 1.0]
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx((2 / 3) * abs(0.3 - 0.5), abs=1e-15)
    curve = reliability_curve(y, p, n_bins=2)
    assert curve["count"].tolist() == [2, 1]


def test_ece_quantile_hand_case() -> None:
    # quantile edges of .1 .2 .3 .4 at 2 bins: [.1, .25, .4]; bins {.1, .2} and {.3, .4}
    y, p = [0, 1, 1, 1], [0.1, 0.2, 0.3, 0.4]
    assert expected_calibration_error(y, p, n_bins=2, strategy="quantile") == pytest.approx(
        0.5 * 0.35 + 0.5 * 0.65, abs=1e-15)
    assert expected_calibration_error(y, p, n_bins=2, strategy="quantile", norm="max") == pytest.approx(
        0.65, abs=1e-15)
    curve = reliability_curve(y, p, n_bins=2, strategy="quantile")
    np.testing.assert_allclose(curve[["lower", "upper"]].to_numpy(), [[0.1, 0.25], [0.25, 0.4]])


def test_empty_bins_weigh_nothing_and_are_reported() -> None:
    y, p = [0, 1, 0, 1], [0.05, 0.05, 0.95, 0.95]
    curve = reliability_curve(y, p, n_bins=10)
    assert curve["count"].tolist() == [2] + [0] * 8 + [2]
    assert curve.loc[1:8, "observed_rate"].isna().all()
    assert expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.45, abs=1e-15)
    assert expected_calibration_error(y, p, n_bins=10, norm="max") == pytest.approx(0.45, abs=1e-15)


def test_perfect_predictions_have_zero_ece_brier_and_unit_slope_undefined() -> None:
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, y.astype(float)) == 0.0
    assert brier_score(y, y.astype(float)) == 0.0
    # p in {0, 1} separates the classes perfectly: the slope's MLE does not exist
    fit = calibration_slope_intercept(y, y.astype(float))
    assert math.isnan(fit.slope) and math.isnan(fit.intercept)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_slow_reference(strategy: str, norm: str) -> None:
    y, p = draw(1500, 11)
    p = np.round(p, 3)
    for n_bins in (1, 4, 15, 40):
        assert expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy, norm=norm) == pytest.approx(
            slow_ece(y, p, n_bins, strategy, norm), abs=1e-12)


def test_log_loss_clipping_and_normalized_entropy_and_oe_ratio() -> None:
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-15), rel=1e-12)
    assert log_loss([1], [0.0], eps=1e-6) == pytest.approx(-math.log(1e-6), rel=1e-12)
    assert log_loss([1, 0], [1.0, 0.0], eps=0.0) == 0.0
    assert math.isinf(log_loss([1], [0.0], eps=0.0))
    # predicting the base rate gives NE = 1 exactly; a better model is below 1
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0])
    assert normalized_entropy(y, np.full(8, 0.25)) == pytest.approx(1.0, abs=1e-12)
    assert normalized_entropy(y, np.where(y == 1, 0.8, 0.1)) < 1
    assert math.isnan(normalized_entropy([0, 0], [0.1, 0.2]))
    assert observed_expected_ratio(y, np.full(8, 0.125)) == pytest.approx(2.0, abs=1e-15)
    assert math.isnan(observed_expected_ratio([0, 1], [0.0, 0.0]))


def test_wilson_interval_known_values_and_defining_equation() -> None:
    lo, hi = wilson_interval([0, 5, 10], [10, 10, 10])
    np.testing.assert_allclose(lo, [0.0, 0.2366, 0.7225], atol=5e-5)
    np.testing.assert_allclose(hi, [0.2775, 0.7634, 1.0], atol=5e-5)
    # the bounds solve (phat - pi)^2 = z^2 pi (1 - pi) / n
    k, n, z = 7.0, 23.0, 1.959963984540054
    lo, hi = wilson_interval(k, n)
    for bound in (lo, hi):
        assert (k / n - bound) ** 2 == pytest.approx(z**2 * bound * (1 - bound) / n, rel=1e-10)
    assert np.isnan(wilson_interval(0, 0)[0])


# ---------------------------------------------------------- Brier decomposition

def test_murphy_identity_is_exact_when_predictions_are_constant_within_bins() -> None:
    rng = np.random.default_rng(3)
    p = rng.choice([0.05, 0.15, 0.45, 0.65, 0.95], size=4000)  # one value per uniform bin of 10
    y = (rng.random(4000) < p ** 1.3).astype(int)
    d = brier_decomposition(y, p, n_bins=10)
    assert d.reliability - d.resolution + d.uncertainty == pytest.approx(brier_score(y, p), abs=1e-12)
    assert d.within_bin_variance == pytest.approx(0.0, abs=1e-15)
    assert d.remainder == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_decomposition_terms_match_slow_reference_and_remainder_closes_identity(strategy: str) -> None:
    y, p = draw(2500, 4)
    d = brier_decomposition(y, p, n_bins=8, strategy=strategy)
    obar = y.mean()
    rel = res = 0.0
    for rows in slow_bins(p, slow_edges(p, 8, strategy)):
        if len(rows):
            rel += len(rows) * (p[rows].mean() - y[rows].mean()) ** 2
            res += len(rows) * (y[rows].mean() - obar) ** 2
    assert d.reliability == pytest.approx(rel / len(y), abs=1e-12)
    assert d.resolution == pytest.approx(res / len(y), abs=1e-12)
    assert d.uncertainty == pytest.approx(obar * (1 - obar), abs=1e-15)
    assert d.remainder != 0
    assert d.reliability - d.resolution + d.uncertainty + d.remainder == pytest.approx(
        brier_score_loss(y, p), abs=1e-12)


# ------------------------------------------------------ slope and intercept

def test_slope_intercept_match_sklearn_and_scipy() -> None:
    y, p = draw(3000, 8)
    q = np.clip(p**1.7, 1e-15, 1 - 1e-15)
    fit = calibration_slope_intercept(y, q)
    lr = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=200)
    lr.fit(special.logit(q)[:, None], y)
    assert fit.slope == pytest.approx(lr.coef_[0, 0], abs=1e-6)
    assert fit.intercept == pytest.approx(lr.intercept_[0], abs=1e-6)
    slope, intercept = slow_logistic(y, q)
    assert fit.slope == pytest.approx(slope, abs=1e-5)
    assert fit.intercept == pytest.approx(intercept, abs=1e-5)


def test_exact_recalibration_recovers_known_slope_and_intercept() -> None:
    # y ~ Bernoulli(sigmoid(a + b logit(q))) with a large n: the fit returns (a, b)
    rng = np.random.default_rng(9)
    q = rng.uniform(0.02, 0.98, 200_000)
    y = (rng.random(q.size) < special.expit(-0.4 + 1.6 * special.logit(q))).astype(int)
    fit = calibration_slope_intercept(y, q)
    assert fit.slope == pytest.approx(1.6, abs=0.03)
    assert fit.intercept == pytest.approx(-0.4, abs=0.03)


def test_slope_standard_errors_are_the_inverse_information_and_cover() -> None:
    y, p = draw(2000, 17)
    fit = calibration_slope_intercept(y, p)
    x = special.logit(p)
    mu = special.expit(fit.intercept + fit.slope * x)
    design = np.column_stack([np.ones_like(x), x])
    cov = np.linalg.inv(design.T @ (design * (mu * (1 - mu))[:, None]))
    assert fit.intercept_se == pytest.approx(math.sqrt(cov[0, 0]), rel=1e-9)
    assert fit.slope_se == pytest.approx(math.sqrt(cov[1, 1]), rel=1e-9)
    lo, hi = fit.interval("slope", confidence=0.9)
    assert (lo + hi) / 2 == pytest.approx(fit.slope) and hi - lo == pytest.approx(2 * 1.6448536 * fit.slope_se)
    # 400 independent calibrated data sets as segments of one call: 95% Wald intervals
    # of the slope cover the true value 1 about 95% of the time
    n_sets, n_each = 400, 400
    rng = np.random.default_rng(23)
    q = rng.beta(2, 5, n_sets * n_each)
    labels = (rng.random(q.size) < q).astype(int)
    table = calibration_by_segment(labels, q, np.repeat(np.arange(n_sets), n_each))
    half = 1.959964 * table["calibration_slope_se"]
    coverage = np.mean(np.abs(table["calibration_slope"] - 1) <= half)
    assert 0.91 <= coverage <= 0.985


def test_slope_is_nan_when_not_identifiable() -> None:
    assert math.isnan(calibration_slope_intercept([1, 1, 1], [0.2, 0.5, 0.7]).slope)
    assert math.isnan(calibration_slope_intercept([0, 1, 1], [0.4, 0.4, 0.4]).slope)


# ------------------------------------------------ statistical behaviour on truth

def test_true_probabilities_are_calibrated_and_p_squared_is_flagged() -> None:
    y, p = draw(40_000, 21)
    boot = ece_bootstrap(y, p, n_bins=10, n_resamples=300, seed=1)
    # a calibrated model's ECE is only binning noise: sum_b sqrt(2 n_b v_b / pi) / n
    curve = reliability_curve(y, p, n_bins=10)
    filled = curve[curve["count"] > 0]
    noise = np.sum(np.sqrt(2 * filled["count"] * filled["mean_predicted"] * (1 - filled["mean_predicted"])
                           / np.pi)) / len(y)
    assert boot.estimate < 3 * noise
    fit = calibration_slope_intercept(y, p)
    assert abs(fit.slope - 1) < 0.05 and abs(fit.intercept) < 0.08
    assert observed_expected_ratio(y, p) == pytest.approx(1, abs=0.03)

    squared = ece_bootstrap(y, p**2, n_bins=10, n_resamples=300, seed=1)
    assert squared.ci_low > boot.ci_high  # flagged: far outside the calibrated model's interval
    fit2 = calibration_slope_intercept(y, p**2)
    # logit(p^2) stretches the low end: predictions too spread out and too low
    assert fit2.slope < 0.8 and fit2.intercept > 0.3
    assert observed_expected_ratio(y, p**2) > 1.5


# ------------------------------------------------------------- per segment

def test_by_segment_equals_scalar_functions_on_each_subset() -> None:
    y, p = draw(3000, 13)
    rng = np.random.default_rng(0)
    seg = rng.choice(np.array(["web", "app", "tv"]), size=len(y))
    y[seg == "tv"] = 0  # one segment with a single class: NE and slope are NaN there
    for strategy in ("uniform", "quantile"):
        table = calibration_by_segment(y, p, seg, n_bins=6, strategy=strategy)
        assert list(table.index) == ["app", "tv", "web"]
        for s in table.index:
            m = seg == s
            row = table.loc[s]
            assert row["n"] == m.sum() and row["positives"] == y[m].sum()
            assert row["ece"] == pytest.approx(expected_calibration_error(y[m], p[m], n_bins=6,
                                                                          strategy=strategy), abs=1e-12)
            assert row["mce"] == pytest.approx(expected_calibration_error(y[m], p[m], n_bins=6, strategy=strategy,
                                                                          norm="max"), abs=1e-12)
            assert row["brier"] == pytest.approx(brier_score_loss(y[m], p[m]), abs=1e-12)
            d = brier_decomposition(y[m], p[m], n_bins=6, strategy=strategy)
            for term in ("reliability", "resolution", "uncertainty"):
                assert row[term] == pytest.approx(getattr(d, term), abs=1e-12)
            assert row["log_loss"] == pytest.approx(log_loss(y[m], p[m]), abs=1e-12)
            assert row["oe_ratio"] == pytest.approx(observed_expected_ratio(y[m], p[m]), abs=1e-12)
            ne = normalized_entropy(y[m], p[m])
            fit = calibration_slope_intercept(y[m], p[m])
            if s == "tv":
                assert math.isnan(row["normalized_entropy"]) and math.isnan(row["calibration_slope"])
            else:
                assert row["normalized_entropy"] == pytest.approx(ne, abs=1e-12)
                assert row["calibration_slope"] == pytest.approx(fit.slope, abs=1e-8)
                assert row["calibration_intercept"] == pytest.approx(fit.intercept, abs=1e-8)


def test_summary_and_evaluate_calibration_agree_with_scalar_functions() -> None:
    y, p = draw(1000, 2)
    summary = calibration_summary(y, p, n_bins=10)
    assert summary["ece"] == pytest.approx(expected_calibration_error(y, p, n_bins=10), abs=1e-12)
    assert summary["brier"] == pytest.approx(brier_score(y, p), abs=1e-12)
    picked = evaluate_calibration(y, p, ["log_loss", "ece"], n_bins=10)
    assert list(picked) == ["log_loss", "ece"]
    assert picked["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    with pytest.raises(ConfigError, match="metrics: unknown value 'auc'; use one of ece, ece_debiased"):
        evaluate_calibration(y, p, ["auc"])


# ---------------------------------------------------------------- bootstrap

@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_bootstrap_replicates_equal_slow_resampling(norm: str) -> None:
    y, p = draw(300, 6)
    boot = ece_bootstrap(y, p, n_bins=5, norm=norm, n_resamples=40, seed=3)
    rng = np.random.default_rng(3)  # the same stream: one (n_resamples, n) draw
    idx = rng.integers(0, len(y), size=(40, len(y)))
    slow = [expected_calibration_error(y[i], p[i], n_bins=5, norm=norm) for i in idx]
    np.testing.assert_allclose(boot.replicates, slow, rtol=0, atol=1e-12)
    assert boot.estimate == pytest.approx(expected_calibration_error(y, p, n_bins=5, norm=norm), abs=1e-15)
    lo, hi = np.quantile(slow, [0.025, 0.975])
    assert (boot.ci_low, boot.ci_high) == pytest.approx((lo, hi), abs=1e-12)
    again = ece_bootstrap(y, p, n_bins=5, norm=norm, n_resamples=40, seed=3)
    np.testing.assert_array_equal(again.replicates, boot.replicates)


def test_calibration_statistics_equal_the_metric_functions_also_when_resampled() -> None:
    y, p = draw(400, 19)
    stats = calibration_stats.calibration_statistics(y, p, n_bins=6, strategy="quantile")
    scalar = {"ece": expected_calibration_error(y, p, n_bins=6, strategy="quantile"),
              "ece_debiased": calibration.debiased_calibration_error(y, p, n_bins=6, strategy="quantile"),
              "mce": expected_calibration_error(y, p, n_bins=6, strategy="quantile", norm="max"),
              "brier": brier_score(y, p), "log_loss": log_loss(y, p),
              "normalized_entropy": normalized_entropy(y, p), "oe_ratio": observed_expected_ratio(y, p)}
    assert set(stats) == set(scalar)
    for name, stat in stats.items():
        assert stat.value() == pytest.approx(scalar[name], abs=1e-12), name
    # row weights from a resample = the metrics of the repeated rows; uniform bins keep
    # their edges, so every statistic matches the plain function on the resample
    uniform = calibration_stats.calibration_statistics(y, p, n_bins=6)
    idx = np.random.default_rng(2).integers(0, len(y), len(y))
    w = np.bincount(idx, minlength=len(y)).astype(float)
    resampled = {"ece": expected_calibration_error(y[idx], p[idx], n_bins=6),
                 "ece_debiased": calibration.debiased_calibration_error(y[idx], p[idx], n_bins=6),
                 "mce": expected_calibration_error(y[idx], p[idx], n_bins=6, norm="max"),
                 "brier": brier_score(y[idx], p[idx]), "log_loss": log_loss(y[idx], p[idx]),
                 "normalized_entropy": normalized_entropy(y[idx], p[idx]),
                 "oe_ratio": observed_expected_ratio(y[idx], p[idx])}
    for name, stat in uniform.items():
        assert float(stat.combine(w @ stat.parts, w.sum())) == pytest.approx(resampled[name], abs=1e-12), name
    with pytest.raises(ConfigError, match="metrics: unknown value 'calibration_slope'"):
        calibration_stats.calibration_statistics(y, p, ["calibration_slope"])


def test_ece_statistic_value_and_resampled_value_equal_ece() -> None:
    y, p = draw(500, 12)
    for strategy in ("uniform", "quantile"):
        stat = calibration_stats.ece_statistic(y, p, n_bins=7, strategy=strategy)
        assert stat.value() == pytest.approx(expected_calibration_error(y, p, n_bins=7, strategy=strategy),
                                             abs=1e-12)
    # a resample with integer row weights is the ECE of the repeated rows (edges fixed, uniform bins)
    stat = calibration_stats.ece_statistic(y, p, n_bins=7)
    idx = np.random.default_rng(1).integers(0, len(y), len(y))
    w = np.bincount(idx, minlength=len(y)).astype(float)
    assert float(stat.combine(w @ stat.parts, w.sum())) == pytest.approx(
        expected_calibration_error(y[idx], p[idx], n_bins=7), abs=1e-12)


# ------------------------------------------------------------ sample weights

def test_weighted_metrics_match_sklearn() -> None:
    y, p = draw(2000, 31)
    w = np.random.default_rng(4).uniform(0.1, 3.0, len(y))
    assert brier_score(y, p, sample_weight=w) == pytest.approx(brier_score_loss(y, p, sample_weight=w), abs=1e-12)
    assert log_loss(y, p, sample_weight=w) == pytest.approx(
        sk_log_loss(y, y_proba=p, sample_weight=w, labels=[0, 1]), abs=1e-12)
    fit = calibration_slope_intercept(y, p, sample_weight=w)
    lr = LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=200)
    lr.fit(special.logit(p)[:, None], y, sample_weight=w)
    assert fit.slope == pytest.approx(lr.coef_[0, 0], abs=1e-6)
    assert fit.intercept == pytest.approx(lr.intercept_[0], abs=1e-6)


def test_integer_weights_equal_repeated_rows() -> None:
    y, p = draw(600, 32)
    w = np.random.default_rng(5).integers(0, 4, len(y))
    yr, pr = np.repeat(y, w), np.repeat(p, w)
    for norm in ("l1", "l2", "max"):
        assert expected_calibration_error(y, p, n_bins=8, norm=norm, sample_weight=w) == pytest.approx(
            expected_calibration_error(yr, pr, n_bins=8, norm=norm), abs=1e-12)
    assert normalized_entropy(y, p, sample_weight=w) == pytest.approx(normalized_entropy(yr, pr), abs=1e-12)
    assert observed_expected_ratio(y, p, sample_weight=w) == pytest.approx(observed_expected_ratio(yr, pr),
                                                                           abs=1e-12)
    d, dr = brier_decomposition(y, p, n_bins=8, sample_weight=w), brier_decomposition(yr, pr, n_bins=8)
    for term in ("brier", "reliability", "resolution", "uncertainty", "within_bin_variance",
                 "within_bin_covariance"):
        assert getattr(d, term) == pytest.approx(getattr(dr, term), abs=1e-12), term
    fit, fit_r = calibration_slope_intercept(y, p, sample_weight=w), calibration_slope_intercept(yr, pr)
    assert (fit.slope, fit.slope_se) == pytest.approx((fit_r.slope, fit_r.slope_se), abs=1e-8)
    curve, curve_r = reliability_curve(y, p, n_bins=8, sample_weight=w), reliability_curve(yr, pr, n_bins=8)
    filled = curve_r["count"] > 0
    np.testing.assert_allclose(curve.loc[filled, ["mean_predicted", "observed_rate"]],
                               curve_r.loc[filled, ["mean_predicted", "observed_rate"]], atol=1e-12)
    np.testing.assert_allclose(curve["weight"], curve_r["count"])
    seg = np.random.default_rng(6).integers(0, 3, len(y))
    table = calibration_by_segment(y, p, seg, n_bins=8, sample_weight=w)
    table_r = calibration_by_segment(yr, pr, np.repeat(seg, w), n_bins=8)
    cols = ["base_rate", "ece", "mce", "brier", "log_loss", "reliability", "resolution", "normalized_entropy",
            "oe_ratio", "calibration_slope", "calibration_intercept", "calibration_slope_se"]
    np.testing.assert_allclose(table[cols], table_r[cols], atol=1e-8)
    np.testing.assert_array_equal(table["weight"], table_r["n"])
    np.testing.assert_array_equal(table["n"], np.bincount(seg))


def test_unit_weights_change_nothing_and_bad_weights_are_refused() -> None:
    y, p = draw(300, 33)
    ones = np.ones(len(y))
    assert expected_calibration_error(y, p, sample_weight=ones) == expected_calibration_error(y, p)
    pd.testing.assert_frame_equal(reliability_curve(y, p, sample_weight=ones), reliability_curve(y, p))
    with pytest.raises(DataValidationError, match=r"sample_weight: 2 weights are negative, NaN or infinite"):
        brier_score([0, 1, 1], [0.1, 0.2, 0.3], sample_weight=[1.0, -1.0, np.nan])
    with pytest.raises(DataValidationError, match=r"sample_weight: expected shape \(3,\)"):
        log_loss([0, 1, 1], [0.1, 0.2, 0.3], sample_weight=[1.0, 2.0])
    with pytest.raises(DataValidationError, match="sum to 0"):
        observed_expected_ratio([0, 1], [0.1, 0.2], sample_weight=[0, 0])
    with pytest.raises(DataValidationError, match="not supported with strategy='quantile'"):
        expected_calibration_error(y, p, strategy="quantile", sample_weight=ones)


# ---------------------------------------------------------------- bad input

BAD = [
    ([], [], "empty input"),
    ([0, 1], [0.5], "length mismatch, 2 labels and 1 probabilities"),
    ([0, 2, 1, 3], [0.1, 0.2, 0.3, 0.4], r"y: 2 labels are not 0 or 1 \(e.g. 2, 3\)"),
    ([0, 1, 1], [0.1, float("nan"), 0.3], r"p: 1 probabilities are NaN or outside \[0, 1\] \(e.g. nan\)"),
    ([0, 1, 1], [0.1, 1.5, -0.2], r"p: 2 probabilities are NaN or outside \[0, 1\] \(e.g. 1.5, -0.2\)"),
    (["a", "b"], [0.1, 0.2], "y: expected numbers"),
    ([[0, 1]], [[0.1, 0.2]], "expected a 1-D array"),
]


@pytest.mark.parametrize("func", [expected_calibration_error, brier_score, log_loss, normalized_entropy,
                                  observed_expected_ratio, calibration_slope_intercept, reliability_curve,
                                  brier_decomposition, brier_score_per_row, log_loss_per_row, ece_bootstrap])
@pytest.mark.parametrize(("y", "p", "message"), BAD)
def test_bad_input_is_refused_with_count_and_example(func, y, p, message) -> None:
    with pytest.raises(DataValidationError, match=message):
        func(y, p)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"n_bins": 0}, "n_bins: must be an integer >= 1"),
    ({"n_bins": 2.5}, "n_bins: must be an integer >= 1"),
    ({"strategy": "kmeans"}, "strategy: unknown value 'kmeans'"),
    ({"norm": "l3"}, "norm: unknown value 'l3'"),
])
def test_bad_options_are_refused(kwargs, message) -> None:
    with pytest.raises(ConfigError, match=message):
        expected_calibration_error([0, 1], [0.2, 0.8], **kwargs)


def test_bad_segments_eps_and_bootstrap_options() -> None:
    with pytest.raises(DataValidationError, match="segments: 1 rows have no segment value"):
        calibration_by_segment([0, 1, 1], [0.1, 0.2, 0.3], ["a", None, "b"])
    with pytest.raises(DataValidationError, match="segments: length 2 does not match 3 rows"):
        calibration_by_segment([0, 1, 1], [0.1, 0.2, 0.3], ["a", "b"])
    with pytest.raises(ConfigError, match=r"eps: must be in \[0, 0.5\), got 0.7"):
        log_loss([0, 1], [0.2, 0.8], eps=0.7)
    with pytest.raises(ConfigError, match="n_resamples: must be an integer >= 10, got 0"):
        ece_bootstrap([0, 1], [0.2, 0.8], n_resamples=0)
    with pytest.raises(ConfigError, match=r"confidence: must be in \(0, 1\), got 1.5"):
        wilson_interval(1, 2, confidence=1.5)


def test_labels_may_be_bool_or_float_zero_one() -> None:
    p = np.array([0.2, 0.7, 0.4])
    assert brier_score(np.array([False, True, True]), p) == brier_score(np.array([0.0, 1.0, 1.0]), p)


# ------------------------------------------------------- Steck calibration KL

def slow_steck_kl(history: pd.DataFrame, recs: pd.DataFrame, cats: pd.DataFrame, alpha: float) -> dict:
    genres_of = cats.groupby("item_id")["category"].apply(list).to_dict()
    all_genres = sorted(cats["category"].unique())

    def dist(frame: pd.DataFrame) -> dict:
        mass = dict.fromkeys(all_genres, 0.0)
        total = 0.0
        for item, w in zip(frame["item_id"], frame.get("weight", pd.Series(1.0, index=frame.index))):
            for g in genres_of[item]:
                mass[g] += w / len(genres_of[item])
            total += w
        return {g: m / total for g, m in mass.items()}

    out = {}
    for user in sorted(recs["user_id"].unique()):
        p = dist(history[history["user_id"] == user])
        q = dist(recs[recs["user_id"] == user])
        out[user] = sum(p[g] * math.log(p[g] / ((1 - alpha) * q[g] + alpha * p[g])) for g in all_genres if p[g] > 0)
    return out


def test_steck_kl_hand_case() -> None:
    history = pd.DataFrame({"user_id": [1, 1, 1, 1], "item_id": [10, 11, 12, 13]})
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": [10, 11]})
    cats = pd.DataFrame({"item_id": [10, 11, 12, 13, 13], "category": ["a", "a", "b", "b", "c"]})
    # p = (a .5, b .375, c .125); q = (a 1); q~ = .99 q + .01 p
    expected = (0.5 * math.log(0.5 / 0.995) + 0.375 * math.log(0.375 / 0.00375)
                + 0.125 * math.log(0.125 / 0.00125))
    kl = calibrated_recs.calibration_kl(history, recs, cats)
    assert kl.loc[1] == pytest.approx(expected, abs=1e-12)
    # a list with the history's exact mix is perfectly calibrated
    same = calibrated_recs.calibration_kl(history, history, cats)
    assert same.loc[1] == pytest.approx(0.0, abs=1e-15)


def test_steck_kl_matches_slow_reference_with_weights() -> None:
    rng = np.random.default_rng(4)
    n_users, n_items = 30, 40
    cats = pd.DataFrame({"item_id": np.arange(n_items), "category": rng.choice(list("abcde"), n_items)})
    extra = pd.DataFrame({"item_id": np.arange(0, n_items, 3), "category": "z"})
    cats = pd.concat([cats, extra], ignore_index=True)
    history = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 8),
                            "item_id": rng.integers(0, n_items, n_users * 8),
                            "weight": rng.uniform(0.5, 2.0, n_users * 8)})
    recs = pd.DataFrame({"user_id": np.repeat(np.arange(n_users), 5),
                         "item_id": rng.integers(0, n_items, n_users * 5),
                         "weight": np.tile(1 / np.log2(np.arange(2, 7)), n_users)})
    kl = calibrated_recs.calibration_kl(history, recs, cats)
    slow = slow_steck_kl(history, recs, cats, 0.01)
    np.testing.assert_allclose(kl.to_numpy(), [slow[u] for u in kl.index], rtol=1e-12, atol=1e-14)
    assert calibrated_recs.mean_calibration_kl(history, recs, cats) == pytest.approx(kl.mean(), abs=1e-15)


def test_steck_kl_bad_input() -> None:
    cats = pd.DataFrame({"item_id": [1, 2], "category": ["a", "b"]})
    hist = pd.DataFrame({"user_id": [1], "item_id": [1]})
    with pytest.raises(DataValidationError, match=r"recommendations: 1 users have no history, .* \(e.g. 2\)"):
        calibrated_recs.calibration_kl(hist, pd.DataFrame({"user_id": [1, 2], "item_id": [1, 2]}), cats)
    with pytest.raises(DataValidationError, match=r"recommendations: 1 rows name items without a category \(e.g. 9\)"):
        calibrated_recs.calibration_kl(hist, pd.DataFrame({"user_id": [1], "item_id": [9]}), cats)
    with pytest.raises(ConfigError, match=r"alpha: must be in \[0, 1\], got 2.0"):
        calibrated_recs.calibration_kl(hist, hist, cats, alpha=2.0)
    with pytest.raises(DataValidationError, match="duplicate"):
        calibrated_recs.calibration_kl(hist, hist, pd.concat([cats, cats]))


# ---------------------------------------------------------------- properties


@st.composite
def labelled(draw_):
    n = draw_(st.integers(1, 60))
    p = draw_(arrays(np.float64, n, elements=st.floats(0, 1)))
    y = draw_(arrays(np.int64, n, elements=st.integers(0, 1)))
    return y, p


@settings(max_examples=60, deadline=None)
@given(labelled(), st.integers(1, 12), st.sampled_from(["uniform", "quantile"]))
def test_properties_of_ece_and_brier_decomposition(data, n_bins, strategy) -> None:
    y, p = data
    l1 = expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy)
    l2 = expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy, norm="l2")
    mx = expected_calibration_error(y, p, n_bins=n_bins, strategy=strategy, norm="max")
    assert 0 <= l1 <= l2 + 1e-12 and l2 <= mx + 1e-12 and mx <= 1
    # one bin: calibration in the large
    assert expected_calibration_error(y, p, n_bins=1) == pytest.approx(abs(p.mean() - y.mean()), abs=1e-12)
    # invariant to the order of rows
    perm = np.random.default_rng(0).permutation(len(y))
    assert expected_calibration_error(y[perm], p[perm], n_bins=n_bins, strategy=strategy) == pytest.approx(
        l1, abs=1e-12)
    d = brier_decomposition(y, p, n_bins=n_bins, strategy=strategy)
    assert d.reliability - d.resolution + d.uncertainty + d.remainder == pytest.approx(d.brier, abs=1e-12)
    assert d.reliability >= 0 and d.resolution >= 0 and d.within_bin_variance >= 0


def test_wilson_interval_holds_the_observed_rate_exactly_at_0_and_1() -> None:
    """At k = 0 (or k = n) the bound is the rate only up to rounding (5.6e-17 above 0 at n = 7);
    the reliability plot's error bars (rate - low) must never be negative."""
    from harness.metrics import wilson_interval

    n = np.arange(1, 200, dtype=float)
    for k in (np.zeros_like(n), n):
        low, high = wilson_interval(k, n)
        rate = k / n
        assert (low <= rate).all() and (rate <= high).all()
    # a reliability diagram with an all-negative bin draws (it raised 'yerr' must not be negative)
    from harness import plot_reliability
    from harness.metrics import reliability_curve

    y = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1, 0])
    p = np.array([0.05] * 7 + [0.9, 0.8, 0.7])
    import matplotlib.pyplot as plt

    fig = plot_reliability({"m": reliability_curve(y, p, n_bins=10)})
    assert fig.axes
    plt.close(fig)
