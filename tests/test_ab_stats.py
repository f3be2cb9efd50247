"""A/B numerics (harness.metrics.ab, .sequential, .ab_power) against independent computations:
scipy's Welch test, plain formulas, a large-sample bootstrap and seeded simulations (each
with its Monte Carlo error stated)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.errors import ConfigError, DataValidationError
from harness.metrics.ab import (ABMetric, ArmEstimate, Ratio, VariantMoments, ab_effect, add_moments, analyze_metric,
                                arm_estimates, cluster_totals, moments_from_table, moments_table,
                                heterogeneity_test, sample_ratio_mismatch, segment_moments, variant_moments)
from harness.metrics.ab_power import ab_arm_sizes, ab_mde, ab_sample_size
from harness.metrics.sequential import always_valid_inference, cs_multiplier, cs_rho2

MEAN = ABMetric("y", Ratio("y"))


def _two_arms(y: np.ndarray, arm: np.ndarray, columns=("y",)) -> list[VariantMoments]:
    return variant_moments(np.atleast_2d(y.T).T if y.ndim == 1 else y, arm, names=["A", "B"], columns=list(columns))


# ----------------------------------------------------------------------------- Welch


@pytest.mark.parametrize("n_a,n_b,sd_b,seed", [(30, 45, 3.0, 0), (500, 200, 0.5, 1), (7, 9, 1.0, 2)])
def test_welch_matches_scipy(n_a: int, n_b: int, sd_b: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(1.0, 1.0, n_a), rng.lognormal(0.2, sd_b / 3, n_b)
    y, arm = np.concatenate([a, b]), np.repeat([0, 1], [n_a, n_b])
    (e,) = analyze_metric(_two_arms(y, arm), MEAN, control="A", confidence=0.9)
    ref = stats.ttest_ind(b, a, equal_var=False)
    ci = ref.confidence_interval(0.9)
    assert e.absolute.estimate == pytest.approx(b.mean() - a.mean(), rel=1e-12)
    assert e.absolute.estimate / e.absolute.std_error == pytest.approx(ref.statistic, rel=1e-9)
    assert e.absolute.df == pytest.approx(ref.df, rel=1e-9)
    assert e.absolute.p_two_sided(0.0) == pytest.approx(ref.pvalue, rel=1e-8)
    assert (e.absolute.ci_low, e.absolute.ci_high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    one = stats.ttest_ind(b, a, equal_var=False, alternative="greater")
    assert e.absolute.p_greater(0.0) == pytest.approx(one.pvalue, rel=1e-8)
    # a margin: H1 delta > m is Welch's test of (b - m) vs a
    shifted = stats.ttest_ind(b - 0.3, a, equal_var=False, alternative="greater")
    assert e.absolute.p_greater(0.3) == pytest.approx(shifted.pvalue, rel=1e-8)


def test_proportions_are_the_unpooled_z_test_in_large_samples() -> None:
    rng = np.random.default_rng(3)
    a, b = (rng.random(200_000) < 0.10).astype(float), (rng.random(200_000) < 0.103).astype(float)
    y, arm = np.concatenate([a, b]), np.repeat([0, 1], a.size)
    (e,) = analyze_metric(_two_arms(y, arm), MEAN, control="A")
    pa, pb = a.mean(), b.mean()
    se = np.sqrt(pa * (1 - pa) / a.size + pb * (1 - pb) / b.size)  # textbook, ddof 0
    assert e.absolute.std_error == pytest.approx(se, rel=1e-4)
    z = (pb - pa) / se
    assert e.absolute.p_two_sided(0.0) == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-3)


# ----------------------------------------------------------------------------- sufficient statistics


def _experiment(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arm = rng.integers(0, 3, n)
    imp = rng.poisson(20, n) + 1
    pre_imp = rng.poisson(20, n) + 1
    skill = rng.beta(2, 20, n)
    clicks = rng.binomial(imp, np.clip(skill * (1 + 0.05 * arm), 0, 1))
    pre_clicks = rng.binomial(pre_imp, skill)
    revenue = rng.gamma(2.0, 3.0, n) * (1 + skill) + 0.1 * arm
    pre_revenue = 0.6 * revenue + rng.gamma(2.0, 1.0, n)
    return pd.DataFrame({"variant": np.array(["control", "t1", "t2"])[arm], "clicks": clicks, "impressions": imp,
                         "pre_clicks": pre_clicks, "pre_impressions": pre_imp, "revenue": revenue,
                         "pre_revenue": pre_revenue})


METRICS = [ABMetric("revenue", Ratio("revenue"), (Ratio("pre_revenue"),)),
           ABMetric("ctr", Ratio("clicks", "impressions"), (Ratio("pre_clicks", "pre_impressions"),)),
           ABMetric("revenue_raw", Ratio("revenue"))]
COLS = ["clicks", "impressions", "pre_clicks", "pre_impressions", "revenue", "pre_revenue"]


def _warehouse(df: pd.DataFrame) -> pd.DataFrame:
    """What a SQL GROUP BY would return, computed with pandas, independent of moments_table."""
    g = df.groupby("variant")
    out = g.size().rename("n").to_frame()
    for i, a in enumerate(COLS):
        out[f"sum({a})"] = g[a].sum()
        for b in COLS[i:]:
            out[f"sum({a}*{b})"] = (df[a] * df[b]).groupby(df["variant"]).sum()
    return out.reset_index()


def test_sufficient_statistics_give_the_per_unit_numbers() -> None:
    df = _experiment(30_000, 4)
    names = ["control", "t1", "t2"]
    codes = pd.Categorical(df["variant"], categories=names).codes
    per_unit = variant_moments(df[COLS].to_numpy(float), codes, names=names, columns=COLS, chunk_rows=4096)
    from_sql = moments_from_table(_warehouse(df).sample(frac=1.0, random_state=0))  # any row order
    from_sql = sorted(from_sql, key=lambda m: names.index(m.variant))
    round_trip = moments_from_table(moments_table(per_unit))
    for metric in METRICS:
        for relative in ("delta", "fieller"):
            a = analyze_metric(per_unit, metric, control="control", relative=relative)
            for other in (from_sql, round_trip):
                b = analyze_metric(other, metric, control="control", relative=relative)
                for x, y in zip(a, b):
                    for f in ("estimate", "ci_low", "ci_high", "std_error"):
                        assert getattr(x.absolute, f) == pytest.approx(getattr(y.absolute, f), rel=1e-9)
                        assert getattr(x.relative, f) == pytest.approx(getattr(y.relative, f), rel=1e-9)
                    assert x.variance_reduction == pytest.approx(y.variance_reduction, rel=1e-9, abs=1e-12)


def test_statistics_table_errors_name_what_is_missing() -> None:
    df = _experiment(2000, 5)
    table = _warehouse(df).drop(columns=["sum(clicks*impressions)"])
    moments = moments_from_table(table)
    with pytest.raises(DataValidationError, match=r"sum\(clicks\*impressions\)"):
        analyze_metric(moments, METRICS[1], control="control")
    analyze_metric(moments, METRICS[0], control="control")  # a metric that does not need it works
    with pytest.raises(DataValidationError, match="no column 'n'"):
        moments_from_table(table.drop(columns=["n"]))
    with pytest.raises(DataValidationError, match=r"'bogus'"):
        moments_from_table(table.assign(bogus=1.0))
    with pytest.raises(DataValidationError, match="more than one row"):
        moments_from_table(pd.concat([table, table.iloc[:1]]))
    with pytest.raises(DataValidationError, match="control variant 'ctl'"):
        analyze_metric(moments, METRICS[0], control="ctl")


# ----------------------------------------------------------------------------- delta method


def test_ratio_delta_method_matches_the_plain_formula_and_a_large_bootstrap() -> None:
    df = _experiment(20_000, 6)
    d = df[df["variant"] == "control"]
    y, x = d["clicks"].to_numpy(float), d["impressions"].to_numpy(float)
    (arm, *_), _ = arm_estimates(variant_moments(np.column_stack([y, x]), np.zeros(y.size, int), names=["A"],
                                                 columns=["clicks", "impressions"]), METRICS[1].__class__(
        "ctr", Ratio("clicks", "impressions")))
    n, r = y.size, y.mean() / x.mean()
    plain = (np.var(y, ddof=1) - 2 * r * np.cov(y, x)[0, 1] + r * r * np.var(x, ddof=1)) / (n * x.mean() ** 2)
    assert arm.value == pytest.approx(r, rel=1e-12)
    assert arm.variance == pytest.approx(plain, rel=1e-9)
    # bootstrap: B = 4000 resamples, relative MC error of an SD about 1 / sqrt(2B) = 1.1%
    rng = np.random.default_rng(7)
    counts = rng.poisson(1.0, size=(4000, n)).astype(float)  # Poisson bootstrap weights
    boot = (counts @ y) / (counts @ x)
    assert np.sqrt(arm.variance) == pytest.approx(boot.std(ddof=1), rel=0.04)


def test_relative_lift_delta_and_fieller() -> None:
    c = ArmEstimate("A", 1000, 2.0, 0.01, 2.0, 0.01)
    t = ArmEstimate("B", 1000, 2.2, 0.02, 2.2, 0.02)
    e = ab_effect(c, t, relative="delta")
    r = 0.1
    assert e.relative.estimate == pytest.approx(r)
    assert e.relative.std_error == pytest.approx(np.sqrt(0.02 / 4 + 2.2 ** 2 * 0.01 / 16))
    f = ab_effect(c, t, relative="fieller").relative
    q = stats.t.ppf(0.975, e.absolute.df)
    for bound in (f.ci_low, f.ci_high):  # each bound: the test of f_T - (1 + m) f_C = 0 sits at q
        rho = 1 + bound
        assert abs(2.2 - rho * 2.0) / np.sqrt(0.02 + rho ** 2 * 0.01) == pytest.approx(q, rel=1e-9)
    assert f.ci_low < r < f.ci_high
    # a control mean not distinguishable from 0: Fieller's set is unbounded
    assert np.isinf(ab_effect(ArmEstimate("A", 50, 0.1, 0.01, 0.1, 0.01), t, relative="fieller").relative.ci_high)


# ----------------------------------------------------------------------------- CUPED


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_cuped_reduces_variance_by_rho_squared(rho: float) -> None:
    """Reported reduction ~ rho^2 in each experiment, and the spread of the adjusted delta
    over 400 simulated experiments is sqrt(1 - rho^2) times the raw one (the ratio of two
    sample variances from 400 draws has relative MC error ~ sqrt(4 / 399) = 10%)."""
    rng = np.random.default_rng(8)
    reps, n = 400, 2000
    metric = ABMetric("y", Ratio("y"), (Ratio("x"),))
    raw, adj, reported = [], [], []
    for _ in range(reps):
        x = rng.normal(size=n)
        y = rho * x + np.sqrt(1 - rho ** 2) * rng.normal(size=n)
        arm = rng.integers(0, 2, n)
        (e,) = analyze_metric(_two_arms(np.column_stack([y, x]), arm, ("y", "x")), metric, control="A")
        raw.append(e.treatment.raw_value - e.control.raw_value)
        adj.append(e.absolute.estimate)
        reported.append(e.variance_reduction)
    assert np.mean(reported) == pytest.approx(rho ** 2, abs=0.01)
    assert 1 - np.var(adj) / np.var(raw) == pytest.approx(rho ** 2, abs=0.1 * (1 - rho ** 2) + 0.02)
    assert np.mean(adj) == pytest.approx(0.0, abs=4 * np.std(adj) / np.sqrt(reps))  # unbiased


def test_cuped_for_a_ratio_metric_reports_the_reduction_it_achieves() -> None:
    """Per-user CTR persists from the pre-period: the linearised regression removes the
    variance it reports, checked against the empirical spread over 300 experiments."""
    rng = np.random.default_rng(9)
    metric = METRICS[1]
    plain, adjusted, reported = [], [], []
    for _ in range(300):
        df = _experiment(3000, int(rng.integers(1 << 30)))
        df["variant"] = np.where(rng.random(len(df)) < 0.5, "control", "t1")  # A/A
        m = variant_moments(df[COLS].to_numpy(float), (df["variant"] == "t1").to_numpy().astype(int),
                            names=["control", "t1"], columns=COLS)
        (e,) = analyze_metric(m, metric, control="control")
        plain.append(e.treatment.raw_value - e.control.raw_value)
        adjusted.append(e.absolute.estimate)
        reported.append(e.variance_reduction)
    empirical = 1 - np.var(adjusted) / np.var(plain)
    assert np.mean(reported) > 0.1
    assert empirical == pytest.approx(np.mean(reported), abs=0.12)


# ----------------------------------------------------------------------------- SRM


def test_srm_caught_at_50_5_percent_with_a_million_users_and_not_on_a_fair_split() -> None:
    planted = sample_ratio_mismatch({"A": 505_000, "B": 495_000}, {"A": 0.5, "B": 0.5})
    ref = stats.chisquare([505_000, 495_000])
    assert planted.statistic == pytest.approx(ref.statistic) and planted.p_value == pytest.approx(ref.pvalue)
    assert planted.invalid and planted.p_value < 1e-20
    rng = np.random.default_rng(10)
    fair = [sample_ratio_mismatch(dict(zip("AB", [k, 1_000_000 - k])), {"A": 0.5, "B": 0.5})
            for k in rng.binomial(1_000_000, 0.5, 2000)]
    # at the 0.001 threshold, 2000 fair splits raise it ~2 times (Poisson: P(>= 8) < 0.1%)
    assert sum(s.invalid for s in fair) < 8
    three = sample_ratio_mismatch({"A": 200, "B": 410, "C": 390}, {"A": 1, "B": 2, "C": 2})
    ref3 = stats.chisquare([200, 410, 390], [200, 400, 400])
    assert three.p_value == pytest.approx(ref3.pvalue) and not three.invalid
    with pytest.raises(DataValidationError, match="unplanned"):
        sample_ratio_mismatch({"A": 1, "B": 2, "X": 3}, {"A": 0.5, "B": 0.5})


# ----------------------------------------------------------------------------- sequential


def test_confidence_sequence_formula_and_p_value_duality() -> None:
    rho2 = cs_rho2(5000, alpha=0.05)
    t = 3000
    plain = np.sqrt(2 * (t * rho2 + 1) / (t * t * rho2) * np.log(np.sqrt(t * rho2 + 1) / 0.05))
    assert cs_multiplier(t, rho2=rho2) / np.sqrt(t) == pytest.approx(plain)
    inf = always_valid_inference(0.2, 0.04, t, horizon=5000)
    assert inf.p_two_sided(inf.ci_low) == pytest.approx(0.05) and inf.p_two_sided(inf.ci_high) == pytest.approx(0.05)
    assert inf.p_greater(inf.ci_low) == pytest.approx(0.05) and inf.p_less(0.0) == 1.0
    assert inf.ci_high - inf.ci_low > 2 * 1.96 * 0.04  # wider than the fixed-horizon interval


def _look_p_values(conv: np.ndarray, per_day: int, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference, every experiment and look at once: the fixed-horizon Welch p-value
    and the always-valid p-value (Waudby-Smith et al. 2021, normal mixture tuned at
    ``horizon``) of B - A, from cumulative conversions ``conv`` (reps, days, 2) of 0/1
    outcomes (``per_day`` units per arm and day)."""
    n = per_day * np.arange(1, conv.shape[1] + 1, dtype=np.float64)[None, :]
    mean = conv / n[..., None]
    var = (conv - conv**2 / n[..., None]) / (n[..., None] - 1) / n[..., None]  # of each arm's mean
    delta, se2 = mean[..., 1] - mean[..., 0], var.sum(axis=-1)
    df = se2**2 / ((var**2).sum(axis=-1) / (n - 1))
    z = delta / np.sqrt(se2)
    fixed = 2 * stats.t.sf(np.abs(z), df)
    a = -2 * np.log(0.05)
    rho2, t = (a + np.log(a + 1)) / horizon, 2 * n
    always = np.minimum(1.0, np.sqrt(t * rho2 + 1) * np.exp(-z * z * t * rho2 / (2 * (t * rho2 + 1))))
    return fixed, always


def _peeking_rates(reps: int, days: int, per_day: int, seed: int, *, checked: int = 100) -> tuple[float, float]:
    """A/A on a 10% conversion, looked at daily: the share of experiments declared
    significant at some look by the fixed-horizon Welch test and by the confidence
    sequence. Each look analyses the cumulative sufficient statistics (n, sum, sum of
    squares = sum for 0/1 values). ``checked`` seeded looks go through the harness's
    ``analyze_metric``, whose p-values must equal the reference's (1e-9); the rates are
    then the reference's, over every look of every experiment."""
    rng = np.random.default_rng(seed)
    conv = np.cumsum(rng.binomial(per_day, 0.1, size=(reps, days, 2)), axis=1).astype(np.float64)
    horizon = 2 * per_day * days
    fixed, always = _look_p_values(conv, per_day, horizon)
    for r, d in zip(rng.integers(0, reps, checked), rng.integers(0, days, checked)):
        m = [VariantMoments(v, per_day * (d + 1), ("y",), np.array([k]), np.array([[k]]))
             for v, k in zip("AB", conv[r, d])]
        (got_fixed,) = analyze_metric(m, MEAN, control="A")
        (got_always,) = analyze_metric(m, MEAN, control="A", sequential=True, horizon=horizon)
        assert got_fixed.absolute.p_two_sided(0.0) == pytest.approx(fixed[r, d], rel=1e-9, abs=1e-12)
        assert got_always.absolute.p_two_sided(0.0) == pytest.approx(always[r, d], rel=1e-9, abs=1e-12)
    return float((fixed < 0.05).any(axis=1).mean()), float((always < 0.05).any(axis=1).mean())


def test_peeking_quick() -> None:
    naive, seq = _peeking_rates(300, 14, 500, 11)
    assert seq <= naive and naive > 0.05


@pytest.mark.slow
def test_daily_peeking_inflates_the_fixed_test_but_not_the_confidence_sequence() -> None:
    """20,000 A/A experiments x 14 daily looks (the harness's p-values equal the
    reference's on 300 seeded looks): MC standard error at 5% is 0.15%. The
    fixed-horizon test stopped at its first significant look rejects 21.9% of them
    (4.4x alpha; Armitage et al. 1969 give ~20% for 10-15 looks); the confidence
    sequence 1.0%, below alpha."""
    naive, seq = _peeking_rates(20_000, 14, 1000, 12, checked=300)
    se = np.sqrt(0.05 * 0.95 / 20_000)
    print(f"A/A rejection at some look: fixed-horizon {naive:.4f}, confidence sequence {seq:.4f}")
    assert naive > 0.05 + 10 * se  # observed 0.219
    assert seq <= 0.05  # observed 0.010: conservative (Ville's inequality is not tight)


# ----------------------------------------------------------------------------- clusters


def _cluster_aa(rng: np.random.Generator, n_clusters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    sizes = rng.integers(20, 80, n_clusters)
    effect = rng.normal(0, 0.5, n_clusters)  # intra-cluster correlation ~ 0.2
    cluster = np.repeat(np.arange(n_clusters), sizes)
    y = effect[cluster] + rng.normal(size=cluster.size)
    arm = rng.integers(0, 2, n_clusters)[cluster]  # whole clusters randomised
    return y, arm, cluster


def _cluster_rates(reps: int, n_clusters: int, seed: int) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    naive = robust = 0
    metric = MEAN.per_cluster()
    for _ in range(reps):
        y, arm, cluster = _cluster_aa(rng, n_clusters)
        (iid,) = analyze_metric(_two_arms(y, arm), MEAN, control="A")
        tot = cluster_totals(y[:, None], arm, cluster, columns=["y"])
        (cr,) = analyze_metric(variant_moments(tot.values, tot.variants, names=["A", "B"], columns=tot.columns),
                               metric, control="A")
        assert cr.absolute.estimate == pytest.approx(iid.absolute.estimate)  # same estimand
        naive += iid.absolute.p_two_sided(0.0) < 0.05
        robust += cr.absolute.p_two_sided(0.0) < 0.05
    return naive / reps, robust / reps


def test_cluster_quick() -> None:
    naive, robust = _cluster_rates(100, 60, 13)
    assert naive > robust


@pytest.mark.slow
def test_cluster_randomised_aa_holds_alpha_only_with_cluster_robust_variance() -> None:
    """1500 A/A experiments of 100 clusters (20-80 users each, ICC ~ 0.2): MC standard
    error at 5% is 0.56%. The iid variance ignores the clustering and rejects far too
    often; the cluster-robust one holds alpha (within 2.5 MC standard errors)."""
    naive, robust = _cluster_rates(1500, 100, 14)
    se = np.sqrt(0.05 * 0.95 / 1500)
    assert naive > 0.25  # observed ~0.5
    assert robust <= 0.05 + 2.5 * se


def test_cluster_spanning_variants_is_an_error() -> None:
    with pytest.raises(DataValidationError, match=r"1 cluster\(s\) have units in more than one variant, e.g. 'm2'"):
        cluster_totals(np.ones((4, 1)), np.array([0, 0, 1, 0]), np.array(["m1", "m1", "m2", "m2"]), columns=["y"])


# ----------------------------------------------------------------------------- power


def test_power_formulas_against_scipy_and_a_simulation() -> None:
    z = stats.norm.ppf
    assert ab_mde(10_000, 2.0) == pytest.approx((z(0.975) + z(0.8)) * 2.0 * np.sqrt(4 / 10_000))
    assert ab_mde(10_000, 2.0, allocation=0.2, sides=1, variance_reduction=0.36, n_tests=4) == pytest.approx(
        (z(1 - 0.05 / 4) + z(0.8)) * 2.0 * 0.8 * np.sqrt(1 / 2000 + 1 / 8000))
    n = ab_sample_size(0.05, 1.0)
    assert ab_mde(n, 1.0) <= 0.05 < ab_mde(n - 2, 1.0)
    s = ab_sample_size(0.05, 1.0, sequential=True)
    assert s > n and ab_mde(s, 1.0, sequential=True) == pytest.approx(0.05, rel=1e-3)
    # simulated power at the MDE: 2000 experiments, MC standard error 0.9%
    rng = np.random.default_rng(15)
    mde = ab_mde(1000, 1.0)
    a, b = rng.normal(0, 1, (2000, 500)), rng.normal(mde, 1, (2000, 500))
    power = np.mean(stats.ttest_ind(b, a, axis=1, equal_var=False).pvalue < 0.05)
    assert power == pytest.approx(0.8, abs=0.03)
    with pytest.raises(ConfigError, match="allocation"):
        ab_mde(100, 1.0, allocation=1.0)
    with pytest.raises(ConfigError, match="effect: 0"):
        ab_sample_size(0.0, 1.0)


def test_arm_sizes_round_each_share_up_and_keep_the_plans_power() -> None:
    """Each arm at least its share of the plan, so its MDE at the enrolled arm sizes is
    no larger than the plan's; a whole share stays whole despite the float product."""
    assert ab_arm_sizes(14913) == (7457, 7457) and ab_arm_sizes(14914) == (7457, 7457)
    assert ab_arm_sizes(10, 0.3) == (3, 7) and ab_arm_sizes(11, 0.3) == (4, 8)
    for allocation in (0.5, 0.3, 0.1):
        n = ab_sample_size(0.05, 1.0, allocation=allocation)
        t, c = ab_arm_sizes(n, allocation)
        assert t >= n * allocation - 1e-9 and c >= n * (1 - allocation) - 1e-9 and t + c - n in (0, 1)
        assert 1.0 * np.sqrt(1 / t + 1 / c) <= ab_mde(n, 1.0, allocation=allocation) / (stats.norm.ppf(0.975)
                                                                                     + stats.norm.ppf(0.8)) + 1e-12
    with pytest.raises(ConfigError, match="allocation"):
        ab_arm_sizes(100, 0.0)


# ----------------------------------------------------------------------------- segments


def test_segment_moments_add_up_to_the_whole_experiment() -> None:
    df = _experiment(5000, 16)
    names = ["control", "t1", "t2"]
    codes = pd.Categorical(df["variant"], categories=names).codes
    seg = np.random.default_rng(0).integers(0, 4, len(df))
    x = df[COLS].to_numpy(float)
    parts = segment_moments(x, codes, seg, names=names, segment_names=list("abcd"), columns=COLS)
    whole = variant_moments(x, codes, names=names, columns=COLS)
    for v, m in enumerate(whole):
        total = add_moments([parts[g][v] for g in "abcd"])
        assert total.variant == m.variant and total.n == m.n
        np.testing.assert_allclose(total.sums, m.sums, rtol=1e-12)
        np.testing.assert_allclose(total.cross, m.cross, rtol=1e-12)
    only_b = (seg == 1)
    direct = variant_moments(x[only_b], codes[only_b], names=names, columns=COLS)
    np.testing.assert_allclose(parts["b"][2].cross, direct[2].cross, rtol=1e-12)


def test_cochran_q_against_the_plain_formula_and_its_level() -> None:
    d, se = np.array([0.1, 0.3, -0.05, 0.2]), np.array([0.05, 0.1, 0.08, 0.2])
    h = heterogeneity_test(d, se)
    w = se ** -2.0
    pooled = np.sum(w * d) / np.sum(w)
    q = sum(wi * (di - pooled) ** 2 for wi, di in zip(w, d))  # plain loop
    assert h.q == pytest.approx(q) and h.pooled == pytest.approx(pooled) and h.df == 3
    assert h.p_value == pytest.approx(stats.chi2.sf(q, 3))
    # homogeneous segments: 4000 draws of 5 normal effects, rejection at 5% within 3 MC SE (0.34%)
    rng = np.random.default_rng(17)
    se = np.array([0.1, 0.2, 0.05, 0.3, 0.15])
    p = [heterogeneity_test(rng.normal(0.2, se), se).p_value for _ in range(4000)]
    assert np.mean(np.array(p) < 0.05) == pytest.approx(0.05, abs=3 * np.sqrt(0.05 * 0.95 / 4000))
    with pytest.raises(DataValidationError, match="needs >= 2 segments"):
        heterogeneity_test(np.array([0.1]), np.array([0.1]))
