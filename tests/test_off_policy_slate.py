"""Slate estimators SIPS, IIPS, RIPS: a 2-position hand case, OBP-formula reference,
propensity helpers, ground truth on an enumerable slate world, bad input."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.errors import DataValidationError
from harness.metrics.slate import (SlateIndependentIPS, SlateInputs, SlateRewardInteractionIPS,
                                   SlateStandardIPS, slate_pscores)

# Two slates of two positions. Logging picks item sequences; evaluation policy differs.
# slate 0: rewards (1, 0); conditionals pi_b: 0.5, 0.4 -> cascade 0.5, 0.2; pi_e: 0.8, 0.5 -> 0.8, 0.4
# slate 1: rewards (0, 1); pi_b: 0.25, 0.5 -> 0.25, 0.125;                 pi_e: 0.5, 1.0 -> 0.5, 0.5
SLATE = np.array([0, 0, 1, 1])
POS = np.array([0, 1, 0, 1])
REWARD = np.array([1.0, 0.0, 0.0, 1.0])
B_COND, E_COND = np.array([0.5, 0.4, 0.25, 0.5]), np.array([0.8, 0.5, 0.5, 1.0])


def test_two_position_hand_case():
    b_casc, b_joint = slate_pscores(SLATE, POS, B_COND)
    e_casc, e_joint = slate_pscores(SLATE, POS, E_COND)
    np.testing.assert_allclose(b_casc, [0.5, 0.2, 0.25, 0.125])
    np.testing.assert_allclose(b_joint, [0.2, 0.2, 0.125, 0.125])
    np.testing.assert_allclose(e_joint, [0.4, 0.4, 0.5, 0.5])
    # RIPS: slate 0: 1 * 0.8/0.5 = 1.6; slate 1: 1 * 0.5/0.125 = 4  -> (1.6 + 4) / 2
    rips = SlateRewardInteractionIPS().estimate_policy_value(
        SlateInputs(slate_id=SLATE, position=POS, reward=REWARD, pscore=b_casc, pi_e=e_casc))
    assert rips == pytest.approx(2.8)
    # SIPS: slate 0: 1 * 0.4/0.2 = 2; slate 1: 1 * 0.5/0.125 = 4 -> 3
    sips = SlateStandardIPS().estimate_policy_value(
        SlateInputs(slate_id=SLATE, position=POS, reward=REWARD, pscore=b_joint, pi_e=e_joint))
    assert sips == pytest.approx(3.0)
    # IIPS with marginals given directly: slate 0 pos 0: 0.6/0.5; slate 1 pos 1: 0.7/0.35
    marg_b, marg_e = np.array([0.5, 0.3, 0.2, 0.35]), np.array([0.6, 0.1, 0.4, 0.7])
    iips = SlateIndependentIPS()
    d = SlateInputs(slate_id=SLATE, position=POS, reward=REWARD, pscore=marg_b, pi_e=marg_e)
    assert iips.estimate_policy_value(d) == pytest.approx((1.2 + 2.0) / 2)
    np.testing.assert_allclose(iips.per_slot_contributions(d), [1.2, 0, 0, 2.0])
    np.testing.assert_allclose(iips.per_row_contributions(d), [1.2, 2.0])
    iv = iips.estimate_interval(d)
    assert iv.n_units == 2 and iv.se == pytest.approx(np.std([1.2, 2.0], ddof=1) / np.sqrt(2))


def _ref_obp_slate(slate_id, reward, pscore, pi_e):
    """OBP: sum over slots of reward * pi_e / pscore, divided by the number of slates."""
    total = 0.0
    for i in range(len(reward)):
        total += reward[i] * pi_e[i] / pscore[i]
    return total / len(set(slate_id.tolist()))


def _enumerable_world(seed):
    """3 items, slates of 2 distinct items (6 slates); sequential softmax policies."""
    rng = np.random.default_rng(seed)
    slates = list(itertools.permutations(range(3), 2))

    def policy(logits):
        probs = {}
        for s in slates:
            p, avail = 1.0, list(range(3))
            conds = []
            for item in s:
                z = np.exp(logits[avail])
                c = z[avail.index(item)] / z.sum()
                conds.append(c)
                p *= c
                avail.remove(item)
            probs[s] = (p, conds)
        return probs

    return slates, policy(rng.normal(size=3)), policy(rng.normal(size=3)), rng.uniform(0.1, 0.9, (3, 2))


def test_sips_and_rips_match_reference_and_cover_the_exact_value():
    slates, pb, pe, click = _enumerable_world(0)
    # cascade-free rewards (each slot's click depends on its own item and position):
    # every estimator is unbiased; exact value = sum_s pe(s) sum_k click[item_k, k]
    truth = sum(pe[s][0] * (click[s[0], 0] + click[s[1], 1]) for s in slates)
    rng = np.random.default_rng(1)
    n = 4000
    idx = rng.choice(len(slates), size=n, p=[pb[s][0] for s in slates])
    items = np.array(slates)[idx]
    slate_id = np.repeat(np.arange(n), 2)
    pos = np.tile([0, 1], n)
    reward = (rng.random(2 * n) < click[items.ravel(), pos]).astype(float)
    cond_b = np.array([pb[slates[i]][1] for i in idx]).ravel()
    cond_e = np.array([pe[slates[i]][1] for i in idx]).ravel()
    for cls, which in ((SlateStandardIPS, 1), (SlateRewardInteractionIPS, 0)):
        b, e = slate_pscores(slate_id, pos, cond_b)[which], slate_pscores(slate_id, pos, cond_e)[which]
        data = SlateInputs(slate_id=slate_id, position=pos, reward=reward, pscore=b, pi_e=e, len_list=2)
        est = cls()
        assert est.estimate_policy_value(data) == pytest.approx(_ref_obp_slate(slate_id, reward, b, e), abs=1e-12)
        iv = est.estimate_interval(data, alpha=0.001)
        assert iv.low <= truth <= iv.high, cls.name


@pytest.mark.parametrize("change, match", [
    ({"position": np.array([0, 0, 0, 1])}, r"1 duplicate \(slate, position\) rows"),
    ({"position": np.array([0, 1, 0, 2]), "len_list": 2}, r"position: 1 of 4 positions outside the slate \[0, 1\]"),
    ({"pscore": np.array([0.5, 0.0, 0.2, 0.1])}, r"pscore: 1 of 4 values outside"),
    ({"reward": np.array([1.0, np.nan, 0.0, 1.0])}, r"reward: 1 of 4 values are NaN"),
    ({"slate_id": np.array([0, 0, 1])}, r"expected shape \(4,\)"),
])
def test_slate_bad_input(change, match):
    base = dict(slate_id=SLATE, position=POS, reward=REWARD, pscore=B_COND, pi_e=E_COND)
    with pytest.raises(DataValidationError, match=match):
        SlateInputs(**{**base, **change})


def test_propensity_kind_checks():
    d = SlateInputs(slate_id=SLATE, position=POS, reward=REWARD, pscore=B_COND, pi_e=E_COND)
    with pytest.raises(DataValidationError, match="sips: pscore must be one slate-level probability per slate; 2 of 2"):
        SlateStandardIPS().estimate_policy_value(d)
    rising = SlateInputs(slate_id=SLATE, position=POS, reward=REWARD, pscore=np.array([0.2, 0.5, 0.2, 0.1]),
                         pi_e=np.array([0.5, 0.4, 0.3, 0.3]))
    with pytest.raises(DataValidationError, match="rips: cascade pscore must be non-increasing along positions; 1 slots increase"):
        SlateRewardInteractionIPS().estimate_policy_value(rising)
    with pytest.raises(DataValidationError, match="without gaps"):
        slate_pscores(SLATE, np.array([0, 2, 0, 1]), B_COND)
    with pytest.raises(DataValidationError, match="sips needs SlateInputs"):
        SlateStandardIPS().estimate_policy_value(object())


def test_slate_bootstrap_interval_resamples_slates():
    rng = np.random.default_rng(3)
    n_slates = 300
    slate_id = np.repeat(np.arange(n_slates), 2)
    pos = np.tile([0, 1], n_slates)
    d = SlateInputs(slate_id=slate_id, position=pos, reward=rng.binomial(1, 0.4, 2 * n_slates).astype(float),
                    pscore=rng.uniform(0.2, 1, 2 * n_slates), pi_e=rng.uniform(0, 1, 2 * n_slates))
    est = SlateIndependentIPS()
    boot = est.estimate_interval(d, method="bootstrap", n_bootstrap=2000, seed=1)
    ana = est.estimate_interval(d)
    assert boot.n_units == n_slates and boot.estimate == ana.estimate
    assert boot.low == pytest.approx(ana.low, abs=0.15 * ana.se)
    assert boot.high == pytest.approx(ana.high, abs=0.15 * ana.se)
