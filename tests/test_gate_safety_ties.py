"""Exact ties in the paired sign-flip (randomisation) test.

Metric values in thirds (recall@3, precision@3), halves or 0/1 make many per-unit deltas
exactly equal, and many sign-flip statistics exactly equal to the observed one. Those
ties must count as "at least as extreme" (the definition of the p-value), which float32
sums or a tolerance sized for the wrong scale silently drop.

References here are slow and plainly correct: all 2^n sign vectors in integer
arithmetic, or the integer convolution of the per-unit sign distributions.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.inference.gate import INCONCLUSIVE, PASS, decide
from harness.metrics.stats import (EXACT_SIGN_FLIP_MAX_SUPPORT, SignFlipInference, infer_paired_means,
                                   sign_flip_support)


def _enumerate_p(u_num: np.ndarray, v_num: np.ndarray, margin: Fraction, greater: bool) -> Fraction:
    """P(mean(e (u - m v)) >= / <= observed) over all 2^n sign vectors, exactly.

    ``u_num``, ``v_num`` are integer numerators (values = numerator / 3). Scaled by the
    margin's denominator every term u - m v is an integer, so the 2^n signed sums are
    exact integer matrix products (no float, no tolerance)."""
    x = (np.asarray(u_num, np.int64) * margin.denominator - margin.numerator * np.asarray(v_num, np.int64))
    signs = np.array(list(itertools.product((1, -1), repeat=len(x))), dtype=np.int64)
    sums, obs = signs @ x, int(x.sum())
    hits = int((sums >= obs).sum() if greater else (sums <= obs).sum())
    return Fraction(hits, 2 ** len(x))


def _thirds_pair(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Baseline and candidate numerators in {0, 1, 2, 3} (values in thirds), with ties."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 4, n)
    step = rng.choice([-1, 0, 0, 1, 1], n)
    cand = np.clip(base + step, 0, 3)
    return base, cand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_absolute_p_values_equal_full_enumeration_with_ties(seed):
    b_num, c_num = _thirds_pair(12, seed)
    c, b = c_num / 3, b_num / 3  # 2/3 - 1/3 and 1/3 differ in the last bit: grouping must not care
    (inf,), _ = infer_paired_means(c, b, method="randomization")
    assert isinstance(inf, SignFlipInference) and inf.weights is not None
    d_num = c_num - b_num
    for margin in (Fraction(0), Fraction(1, 3), Fraction(-1, 3), Fraction(1, 7)):
        # margin on the value scale: d - m = (d_num - 3 m) / 3
        for greater in (True, False):
            ref = _enumerate_p(d_num, np.full(12, 1), 3 * margin, greater)
            ours = inf.p_greater(float(margin)) if greater else inf.p_less(float(margin))
            assert ours == pytest.approx(float(ref), rel=1e-12, abs=1e-15), (margin, greater)


@pytest.mark.parametrize("seed", [3, 4])
def test_relative_p_values_equal_full_enumeration_with_ties(seed):
    b_num, c_num = _thirds_pair(12, seed)
    b_num = np.maximum(b_num, 1)  # a positive baseline mean
    c, b = c_num / 3, b_num / 3
    _, (rel,) = infer_paired_means(c, b, method="randomization")
    d_num = c_num - b_num
    for margin in (Fraction(0), Fraction(1, 2), Fraction(-1, 4)):
        for greater in (True, False):
            # c / b - 1 > m  <=>  mean((c - b) - m b) > 0
            ref = _enumerate_p(d_num, b_num, margin, greater)
            ours = rel.p_greater(float(margin)) if greater else rel.p_less(float(margin))
            assert ours == pytest.approx(float(ref), rel=1e-12, abs=1e-15), (margin, greater)


def _issue_thirds_frames() -> dict[str, pd.DataFrame]:
    """40 queries, recall@3-like values: 11 up by a third, 4 down by a third, 25 equal."""
    rng = np.random.default_rng(13)
    step = np.r_[np.full(11, 1), np.full(4, -1), np.zeros(25, dtype=int)]
    base = np.where(step > 0, rng.integers(0, 3, 40), np.where(step < 0, rng.integers(1, 4, 40),
                                                                rng.integers(0, 4, 40)))
    index = pd.Index([f"q{i}" for i in range(40)])
    return {"prod": pd.DataFrame({"recall@3": base / 3}, index=index),
            "cand": pd.DataFrame({"recall@3": (base + step) / 3}, index=index)}


def test_issue_thirds_example_gives_the_exact_p_and_does_not_pass():
    """Issue 13, case 2: the gate PASSed with p ~ 0.017 (float32 sums dropped the ties);
    the exact sign-flip p is P(Binomial(15, 1/2) >= 11) = 1941 / 32768 = 0.0592."""
    comps = compare_models(_issue_thirds_frames(), baseline="prod", candidates=["cand"],
                           metrics=["recall@3"], method="randomization")
    verdict = decide([GateCriterion(metric="recall@3", role="primary", direction="higher")], comps)
    (crit,) = verdict.criteria
    assert crit.p_value == pytest.approx(1941 / 32768, rel=1e-12)
    assert comps[0].inference.exact
    assert verdict.decision == INCONCLUSIVE
    # the same data at alpha = 0.06 passes: the p-value is the exact one, not a bound
    loose = GateCriterion(metric="recall@3", role="primary", direction="higher", alpha=0.06)
    assert decide([loose], comps).decision == PASS


def test_support_grouping_counts_each_sign_vector_once():
    """Weights are probabilities of the exact null: they sum to 1, the mean is 0 and the
    variance is sum(d^2) / n^2, whatever the ties."""
    d = np.r_[np.full(7, 0.5), np.full(3, -0.5), np.full(5, 1.5), np.zeros(9)]
    a_u, a_v, w = sign_flip_support(d, np.ones(d.size))
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    assert (w * a_u).sum() == pytest.approx(0.0, abs=1e-15)
    assert (w * a_u**2).sum() == pytest.approx((d @ d) / d.size**2, rel=1e-12)
    # pairs (d, 1) up to a joint sign: (0.5, 1) x7, (0.5, -1) x3, (1.5, 1) x5, (0, 1) x9
    assert a_u.size == (7 + 1) * (3 + 1) * (5 + 1) * (9 + 1)


def _lattice_p_greater(k: np.ndarray) -> float:
    """Exact P(sum e_i k_i >= sum k_i) for integer k by convolving the per-unit sign
    distributions (a plain loop over units: the reference)."""
    total = int(np.abs(k).sum())
    dist = np.zeros(2 * total + 1)
    dist[total] = 1.0
    for ki in np.abs(k):
        ki = int(ki)
        if ki == 0:
            continue
        new = np.zeros_like(dist)
        new[ki:] += 0.5 * dist[:-ki]
        new[:-ki] += 0.5 * dist[ki:]
        dist = new
    obs = int(k.sum())
    return float(dist[total + obs:].sum())


def test_monte_carlo_counts_ties_when_the_support_is_too_large():
    """Too many distinct (value, count) groups for the exact path: the Monte Carlo p
    estimates the exact p (ties included) within its standard error. The tie mass at the
    observed statistic is many SEs, so dropping ties would fail this test."""
    rng = np.random.default_rng(0)
    k = rng.choice(np.arange(-3, 4), 40, p=[0.08, 0.12, 0.14, 0.2, 0.18, 0.16, 0.12])
    d = k / 3
    assert sign_flip_support(d, np.ones(d.size)) is None  # > EXACT_SIGN_FLIP_MAX_SUPPORT points
    exact = _lattice_p_greater(k)
    b = np.full(d.size, 1.0)
    n_flips = 20_000
    (inf,), _ = infer_paired_means(b + d, b, method="randomization", n_resamples=n_flips, seed=5)
    assert not inf.exact and inf.weights is None
    mc_se = np.sqrt(exact * (1 - exact) / n_flips)  # 0.0020 here (exact p = 0.0847)
    assert abs(inf.p_greater(0.0) - exact) < 4 * mc_se, (inf.p_greater(0.0), exact, mc_se)
    # what a tie-dropping count would have given: strictly greater only
    tie_mass = exact - (1 - _lattice_p_greater(-k))  # P(S >= obs) - P(S > obs)
    assert tie_mass > 10 * mc_se  # 0.0228, 11.6 SE
    assert EXACT_SIGN_FLIP_MAX_SUPPORT == 1 << 16
