"""Evaluation policies from a model's scores, each against a plain reference written here:
top-k, epsilon-greedy, softmax with a temperature, and the Plackett-Luce top-k slate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.errors import AdapterError, DataValidationError
from harness.metrics.slate import slate_pscores
from harness.models.policies import EpsilonGreedyPolicy, PlackettLucePolicy, SoftmaxPolicy, TopKPolicy

RNG = np.random.default_rng(0)
SCORES = RNG.normal(size=(6, 5))
SCORES[2, [1, 3]] = 9.0  # a tie: the lower action id ranks first


def _ranking(row):
    return sorted(range(len(row)), key=lambda a: (-row[a], a))


def _topk_ref(x, a, p):
    return 1.0 if _ranking(SCORES[x])[p] == a else 0.0


@pytest.mark.parametrize("make, ref", [
    (lambda: TopKPolicy(SCORES, len_list=3), _topk_ref),
    (lambda: EpsilonGreedyPolicy(SCORES, epsilon=0.3, len_list=3),
     lambda x, a, p: 0.7 * _topk_ref(x, a, p) + 0.3 / 5),
    (lambda: SoftmaxPolicy(SCORES, temperature=0.4, len_list=3),
     lambda x, a, p: math.exp(SCORES[x, a] / 0.4) / sum(math.exp(v / 0.4) for v in SCORES[x])),
])
@pytest.mark.parametrize("batch_size", [1, 4, 1000])
def test_policy_probabilities_equal_the_plain_formula(make, ref, batch_size):
    pol = make()
    pol.batch_size = batch_size
    ctx, act, pos = np.meshgrid(np.arange(6), np.arange(5), np.arange(3), indexing="ij")
    ctx, act, pos = ctx.ravel(), act.ravel(), pos.ravel()
    expected = [ref(x, a, p) for x, a, p in zip(ctx, act, pos)]
    np.testing.assert_allclose(pol.action_probabilities(ctx, act, pos), expected, rtol=1e-12, atol=1e-15)
    callable_pol = make()
    callable_pol.scores = lambda c: SCORES[c]  # the batched path of a callable scorer
    callable_pol.batch_size = batch_size
    np.testing.assert_allclose(callable_pol.action_probabilities(ctx, act, pos), expected, rtol=1e-12, atol=1e-15)


def _pl_conditionals_ref(row, slate, temperature):
    out, remaining = [], list(range(len(row)))
    for a in slate:
        w = {b: math.exp(row[b] / temperature) for b in remaining}
        out.append(w[a] / sum(w.values()))
        remaining.remove(a)
    return out


@pytest.mark.parametrize("temperature", [0.05, 0.5, 2.0])
def test_plackett_luce_conditionals_equal_the_plain_sequential_formula(temperature):
    pol = PlackettLucePolicy(SCORES, temperature=temperature, len_list=3, batch_size=4)
    slates = np.array([RNG.permutation(5)[:3] for _ in range(6)])
    got = pol.slot_conditionals(np.arange(6), slates)
    ref = [_pl_conditionals_ref(SCORES[x], slates[x], temperature) for x in range(6)]
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-300)
    cascade, joint = pol.slate_propensities(np.arange(6), slates)
    np.testing.assert_allclose(cascade, np.cumprod(ref, axis=1), rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(joint, np.repeat(np.prod(ref, axis=1)[:, None], 3, axis=1), rtol=1e-10, atol=1e-300)
    # the same propensities as metrics.slate_pscores builds from the flattened conditionals
    slate_id, position = np.repeat(np.arange(6), 3), np.tile(np.arange(3), 6)
    c2, j2 = slate_pscores(slate_id, position, np.asarray(got).ravel())
    np.testing.assert_allclose(c2, cascade.ravel(), rtol=1e-10)
    np.testing.assert_allclose(j2, joint.ravel(), rtol=1e-10)


def test_plackett_luce_slates_sum_to_one_and_k1_is_softmax():
    pol = PlackettLucePolicy(SCORES, temperature=0.7, len_list=2)
    slates = np.array(list(itertools.permutations(range(5), 2)))
    for x in range(6):
        _, joint = pol.slate_propensities(np.full(len(slates), x), slates)
        assert joint[:, 0].sum() == pytest.approx(1.0, abs=1e-12)
    one = PlackettLucePolicy(SCORES, temperature=0.7, len_list=1)
    first = one.slot_conditionals(np.repeat(np.arange(6), 5), np.tile(np.arange(5), 6)[:, None])
    soft = SoftmaxPolicy(SCORES, temperature=0.7).distribution(np.arange(6))[:, :, 0]
    np.testing.assert_allclose(first.reshape(6, 5), soft, rtol=1e-12)


def test_plackett_luce_sampler_matches_the_slate_probabilities():
    scores = np.array([[0.0, 1.0, -0.5, 0.3]])
    pol = PlackettLucePolicy(scores, temperature=1.0, len_list=2)
    n = 40_000
    draws = pol.sample(np.zeros(n, dtype=np.int64), seed=3)
    slates = np.array(list(itertools.permutations(range(4), 2)))
    _, joint = pol.slate_propensities(np.zeros(len(slates), dtype=np.int64), slates)
    freq = np.array([((draws[:, 0] == a) & (draws[:, 1] == b)).mean() for a, b in slates])
    se = np.sqrt(joint[:, 0] * (1 - joint[:, 0]) / n)
    assert (np.abs(freq - joint[:, 0]) < 4.5 * se).all()
    assert (draws[:, 0] != draws[:, 1]).all()


def test_plackett_luce_at_low_temperature_is_the_top_k_ranking():
    pol = PlackettLucePolicy(SCORES, temperature=1e-3, len_list=3)
    drawn = pol.sample(np.arange(6), seed=0)
    mask = np.arange(6) != 2  # context 2 has a tie at the top: either order may be drawn there
    np.testing.assert_array_equal(drawn[mask], np.array([_ranking(r)[:3] for r in SCORES])[mask])
    top = np.array([_ranking(r)[:3] for r in SCORES])
    cascade, _ = pol.slate_propensities(np.arange(6), top)
    np.testing.assert_allclose(cascade[mask], 1.0)


@pytest.mark.parametrize("slates, match", [
    (np.array([[0, 0]]), r"1 slates repeat an action"),
    (np.array([[0, 7]]), r"actions outside \[0, 4\]"),
    (np.array([[0, 1, 2]]), r"expected integer actions of shape \(1, 2\)"),
    (np.array([[0.0, 1.0]]), r"expected integer actions"),
])
def test_plackett_luce_bad_slates(slates, match):
    with pytest.raises(DataValidationError, match=match):
        PlackettLucePolicy(SCORES, len_list=2).slot_conditionals(np.array([0]), slates)


def test_plackett_luce_bad_options():
    with pytest.raises(DataValidationError, match="temperature must be > 0"):
        PlackettLucePolicy(SCORES, temperature=0)
    with pytest.raises(DataValidationError, match="len_list must be an integer"):
        PlackettLucePolicy(SCORES, len_list=0)
    with pytest.raises(AdapterError, match=r"expected finite \(batch, n_actions >= 6\)"):
        PlackettLucePolicy(SCORES, len_list=6).slot_conditionals(np.array([0]), np.zeros((1, 6), dtype=int))


def test_plackett_luce_full_permutations_leave_no_other_item():
    pol = PlackettLucePolicy(SCORES, temperature=0.9, len_list=5)
    slates = np.array([RNG.permutation(5) for _ in range(6)])
    got = pol.slot_conditionals(np.arange(6), slates)
    np.testing.assert_allclose(got, [_pl_conditionals_ref(SCORES[x], slates[x], 0.9) for x in range(6)], rtol=1e-10)
    np.testing.assert_allclose(got[:, -1], 1.0)  # the last item is the only one left
