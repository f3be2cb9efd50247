"""metrics/_resample.py: the one bootstrap weight generator, against plain references.

- multinomial counts are scipy.stats.bootstrap's resamples (same seed, any chunking);
- Poisson weights equal a plain-Python SplitMix64 reference, whatever the blocking, the
  path (fused, BLAS, materialised) or the number of threads, and have Poisson(1)
  probabilities;
- every bootstrap of the harness (sum statistics, weighted statistics, off-policy
  estimators) draws exactly these weights.
"""

from __future__ import annotations

import doctest
import math

import numba
import numpy as np
import pytest
from scipy import stats as sps

from harness.errors import ConfigError
from harness.metrics import _resample, stats
from harness.metrics.off_policy import IPS, SNIPS, OPEInputs, _bootstrap_means, estimate_intervals

MASK = (1 << 64) - 1


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def plain_poisson_weight(seed: int, b: int, i: int) -> int:
    """The module docstring's definition, in Python integers."""
    g = 0x9E3779B97F4A7C15
    s_b = _mix(_mix((seed + g) & MASK) ^ ((b * g + 0x94D049BB133111EB) & MASK))
    z = _mix((s_b + (i // 2 + 1) * g) & MASK)
    u = z >> 32 if i % 2 == 0 else z & 0xFFFFFFFF
    cdf = np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(16)])
    thresholds = [math.floor(c * 2.0**32) for c in cdf]
    return sum(u >= t for t in thresholds)


def test_doctests_run_and_pass() -> None:
    result = doctest.testmod(_resample)
    assert result.attempted >= 5 and result.failed == 0


# ----------------------------------------------------------------------------- poisson


def test_poisson_weights_equal_the_plain_definition() -> None:
    got = _resample.poisson_weights(12345, 3, 4, 5, 9)  # odd first unit: a pair cut in two
    ref = np.array([[plain_poisson_weight(12345, b, i) for i in range(5, 14)] for b in range(3, 7)])
    np.testing.assert_array_equal(got, ref)
    assert _resample.poisson_weights(2**64 + 7, 0, 1, 0, 3).tolist() == \
        _resample.poisson_weights(7, 0, 1, 0, 3).tolist()  # the seed is taken mod 2^64


def test_thresholds_give_poisson_probabilities_to_2_pow_minus_32() -> None:
    t = _resample.POISSON_THRESHOLDS.astype(np.float64)
    probs = np.diff(np.r_[0.0, t]) / 2.0**32
    assert np.abs(probs - sps.poisson.pmf(np.arange(16), 1.0)).max() <= 2.0**-32


def test_poisson_weights_have_poisson_frequencies_and_no_correlation() -> None:
    w = _resample.poisson_weights(1, 0, 400, 0, 5000)
    counts = np.bincount(w.astype(int).ravel(), minlength=8)[:8].astype(float)
    expected = sps.poisson.pmf(np.arange(8), 1.0) * w.size
    expected[-1] += sps.poisson.sf(7, 1.0) * w.size
    counts[-1] += (w >= 8).sum()
    assert sps.chisquare(counts, expected).pvalue > 1e-3
    # neighbouring units (the two halves of one 64-bit draw) and neighbouring resamples
    assert abs(np.corrcoef(w[:, 0::2].ravel(), w[:, 1::2].ravel())[0, 1]) < 0.005
    assert abs(np.corrcoef(w[:-1].ravel(), w[1:].ravel())[0, 1]) < 0.005


def test_blocking_path_and_threads_do_not_change_the_weights() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5003, 3))
    ref = _resample.poisson_weights(9, 0, 64, 0, 5003)
    blocks = list(_resample.weight_blocks(5003, 64, seed=9, scheme="poisson", max_cells=7 * 5003))
    assert [s for s, _ in blocks] == list(range(0, 64, 7))
    np.testing.assert_array_equal(np.vstack([blk for _, blk in blocks]), ref)
    fused, totals = _resample.weighted_sums(x, 64, seed=9, scheme="poisson")
    np.testing.assert_allclose(fused, ref @ x, rtol=1e-12)
    np.testing.assert_array_equal(totals, ref.sum(axis=1))
    wide = np.hstack([x] * 4)  # 12 columns: float32 BLAS blocks of 1000 units
    blas, totals2 = _resample.weighted_sums(wide, 64, seed=9, scheme="poisson", max_cells=64 * 1000)
    np.testing.assert_array_equal(totals2, totals)
    # float32 products of centred parts, accumulated per block: error << sum of |terms|
    scale = ref @ np.abs(wide - wide.mean(axis=0))
    assert (np.abs(blas - ref @ wide) <= 1e-4 * scale).all()
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one, _ = _resample.weighted_sums(x, 64, seed=9, scheme="poisson")
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one, fused)  # bit for bit


# ------------------------------------------------------------------------- multinomial


@pytest.mark.parametrize("max_cells", [None, 3 * 41, 41])
def test_multinomial_counts_are_scipys_resamples(max_cells) -> None:
    n, b, seed = 41, 25, 11
    idx = np.random.default_rng(seed).integers(0, n, (b, n))  # scipy.stats.bootstrap's draw
    ref = np.stack([np.bincount(row, minlength=n) for row in idx]).astype(float)
    got = np.vstack([blk for _, blk in _resample.weight_blocks(n, b, seed=seed, scheme="multinomial",
                                                                  max_cells=max_cells)])
    np.testing.assert_array_equal(got, ref)
    x = np.random.default_rng(1).normal(size=(n, 3))
    sums, totals = _resample.weighted_sums(x, b, seed=seed, scheme="multinomial", max_cells=max_cells)
    np.testing.assert_allclose(sums, ref @ x, rtol=1e-12)
    assert (totals == n).all()


def test_a_columns_sums_do_not_depend_on_the_other_columns() -> None:
    x = np.random.default_rng(2).normal(size=(300, 4))
    for scheme in ("multinomial", "poisson"):
        alone, _ = _resample.weighted_sums(x[:, :1], 50, seed=3, scheme=scheme)
        joint, _ = _resample.weighted_sums(x, 50, seed=3, scheme=scheme)
        np.testing.assert_array_equal(alone[:, 0], joint[:, 0])


def test_scheme_resolution_and_bad_options() -> None:
    assert _resample.resolve_scheme("auto", _resample.MULTINOMIAL_MAX_UNITS) == "multinomial"
    assert _resample.resolve_scheme("auto", _resample.MULTINOMIAL_MAX_UNITS + 1) == "poisson"
    with pytest.raises(ConfigError, match="weights: unknown value 'bayes'"):
        _resample.resolve_scheme("bayes", 10)
    with pytest.raises(ConfigError, match="n_resamples: must be an integer >= 1, got 0"):
        _resample.weighted_sums(np.ones((3, 1)), 0, seed=0, scheme="poisson")


# ------------------------------------------------------- every bootstrap draws these weights


@pytest.mark.parametrize("scheme", ["multinomial", "poisson"])
def test_sum_weighted_and_off_policy_bootstraps_share_the_generator(scheme) -> None:
    rng = np.random.default_rng(4)
    n, b, seed = 200, 40, 6
    w = np.vstack([blk for _, blk in _resample.weight_blocks(n, b, seed=seed, scheme=scheme)])
    x = rng.gamma(2.0, 1.0, n)
    # sum statistics (paired comparisons, ECE, SNIPS, ...)
    sums, totals = stats.bootstrap_sums(x, n_resamples=b, seed=seed, weights=scheme)
    np.testing.assert_allclose(sums[:, 0] / totals, (w @ x) / w.sum(1), rtol=1e-12)
    # weighted statistics (AUC, calibration slope, ...): fn sees the same weight rows
    seen = []

    def fn(weights: np.ndarray) -> np.ndarray:
        seen.append(weights.copy())
        return (weights * x).sum(1) / weights.sum(1)

    stats.bootstrap_weighted([stats.WeightedStatistic(fn, n)], n_resamples=b, seed=seed, weights=scheme)
    np.testing.assert_array_equal(np.vstack(seen[:-1]), w)  # then value() calls it on a row of ones
    # off-policy estimators
    data = OPEInputs(reward=(rng.random(n) < 0.3).astype(float), pscore=rng.uniform(0.2, 0.8, n),
                     pi_e=rng.uniform(0.1, 0.9, n))
    cols = np.column_stack([data.pi_e / data.pscore * data.reward, data.pi_e / data.pscore])
    means = _bootstrap_means(cols, b, seed, scheme)
    np.testing.assert_allclose(means, (w @ cols) / w.sum(1)[:, None], rtol=1e-12)
    iv = estimate_intervals([IPS(), SNIPS()], data, method="bootstrap", n_bootstrap=b, seed=seed,
                            resampling=scheme)
    snips_reps = (w @ cols[:, 0]) / (w @ cols[:, 1])
    assert (iv["snips"].low, iv["snips"].high) == pytest.approx(tuple(np.quantile(snips_reps, [0.025, 0.975])),
                                                                rel=1e-12)
