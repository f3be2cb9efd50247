"""Evaluation policies (top-k, epsilon-greedy, softmax, probability table) and the
cross-fitted reward model."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

from harness.types import Policy
from harness.datasets.bandit import LoggedFeedback
from harness.datasets.synthetic_bandit import make_synthetic_bandit
from harness.errors import AdapterError, DataValidationError
from harness.metrics.off_policy import DR, OPEInputs
from harness.models.policies import EpsilonGreedyPolicy, ProbabilityTablePolicy, SoftmaxPolicy, TopKPolicy
from harness.models.reward_model import fit_reward_model

SCORES = np.array([[0.1, 0.9, 0.5, 0.9],     # tie between actions 1 and 3: id ascending
                   [2.0, -1.0, 0.0, 1.0]])


def test_top_k_policy_hand_case():
    dist = TopKPolicy(SCORES, len_list=2).distribution(np.array([0, 1]))
    assert dist.shape == (2, 4, 2)
    np.testing.assert_array_equal(dist[0, :, 0], [0, 1, 0, 0])
    np.testing.assert_array_equal(dist[0, :, 1], [0, 0, 0, 1])
    np.testing.assert_array_equal(dist[1, :, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(dist[1, :, 1], [0, 0, 0, 1])


def test_epsilon_greedy_and_softmax_hand_cases():
    eg = EpsilonGreedyPolicy(SCORES, epsilon=0.2).distribution(np.array([1]))
    np.testing.assert_allclose(eg[0, :, 0], [0.85, 0.05, 0.05, 0.05])
    sm = SoftmaxPolicy(SCORES, temperature=2.0, len_list=2).distribution(np.array([1]))
    z = np.exp(np.array([2.0, -1.0, 0.0, 1.0]) / 2)
    np.testing.assert_allclose(sm[0, :, 0], z / z.sum())
    np.testing.assert_allclose(sm[0, :, 1], z / z.sum())


@pytest.mark.parametrize("make", [
    lambda sc, **kw: SoftmaxPolicy(sc, temperature=0.5, len_list=3, **kw),
    lambda sc, **kw: EpsilonGreedyPolicy(sc, epsilon=0.3, len_list=3, **kw),
    lambda sc, **kw: TopKPolicy(sc, len_list=3, **kw),
])
def test_policies_table_and_batched_paths_agree_with_dense_reference(make):
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(30, 7))
    contexts = rng.integers(0, 30, 1000)
    actions = rng.integers(0, 7, 1000)
    positions = rng.integers(0, 3, 1000)
    q = rng.uniform(size=(30, 7, 3))
    table_pol = make(scores)  # whole-table gather path
    batched = make(lambda ctx: scores[ctx], batch_size=17)  # callable scorer: batched path
    assert isinstance(table_pol, Policy) and isinstance(batched, Policy)
    dense = table_pol.distribution(contexts)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0)
    ref_p = dense[np.arange(1000), actions, positions]
    ref_v = [sum(dense[i, a, positions[i]] * q[contexts[i], a, positions[i]] for a in range(7))
             for i in range(1000)]
    for pol in (table_pol, batched):
        np.testing.assert_allclose(pol.action_probabilities(contexts, actions, positions), ref_p)
    np.testing.assert_allclose(table_pol.expected_reward(contexts, q, positions), ref_v, atol=1e-12)
    np.testing.assert_allclose(batched.expected_reward(contexts, lambda ctx: q[ctx], positions), ref_v,
                               atol=1e-12)
    np.testing.assert_allclose(table_pol.expected_reward(contexts, lambda ctx: q[ctx], positions), ref_v,
                               atol=1e-12)


def test_probability_table_policy():
    table = np.array([[0.5, 0.5, 0.0], [0.1, 0.2, 0.7]])
    pol = ProbabilityTablePolicy(table)
    np.testing.assert_allclose(pol.action_probabilities(np.array([1, 0]), np.array([2, 2])), [0.7, 0.0])
    with pytest.raises(DataValidationError, match="1 .context, position. rows do not sum to 1"):
        ProbabilityTablePolicy(np.array([[0.5, 0.4, 0.0], [0.1, 0.2, 0.7]]))
    with pytest.raises(DataValidationError, match="entries outside"):
        ProbabilityTablePolicy(np.array([[1.5, -0.5]]))


def test_policy_bad_input():
    with pytest.raises(DataValidationError, match="epsilon must be in"):
        EpsilonGreedyPolicy(SCORES, epsilon=1.5)
    with pytest.raises(DataValidationError, match="temperature must be > 0"):
        SoftmaxPolicy(SCORES, temperature=0.0)
    with pytest.raises(DataValidationError, match="contexts must be integer ids"):
        TopKPolicy(SCORES).action_probabilities(np.array([5]), np.array([0]))
    with pytest.raises(DataValidationError, match="positions: expected 1 integers"):
        TopKPolicy(SCORES).action_probabilities(np.array([0]), np.array([0]), np.array([1]))
    with pytest.raises(AdapterError, match="without NaN"):
        TopKPolicy(np.array([[np.nan, 1.0]])).distribution(np.array([0]))


# --- reward model ---------------------------------------------------------------------------

def test_reward_model_is_cross_fitted():
    sim = make_synthetic_bandit(600, n_actions=4, len_list=2, n_contexts=10, seed=4)
    fb = sim.feedback
    fit = fit_reward_model(fb, LinearRegression(), n_folds=3, seed=1)
    assert sorted(np.bincount(fit.fold)) == [400, 400, 400]
    X = np.hstack([fb.context, np.eye(4)[fb.action]])
    for f in range(3):
        for p in range(2):
            train = (fit.fold != f) & (fb.positions == p)
            test = (fit.fold == f) & (fb.positions == p)
            ref = LinearRegression().fit(X[train], fb.reward[train]).predict(X[test])
            np.testing.assert_allclose(fit.q_hat[test], ref, atol=1e-10)


def test_reward_model_expected_reward_and_dr_ground_truth():
    sim = make_synthetic_bandit(3000, n_actions=5, n_contexts=15, seed=6)
    fb = sim.feedback
    fit = fit_reward_model(fb, LogisticRegression(), n_folds=2, seed=0)
    pol = EpsilonGreedyPolicy(sim.q_true[:, :, 0], epsilon=0.3)
    v_hat = fit.expected_reward(pol, batch_size=333)
    dense = pol.distribution(fb.context_id)
    q_all = np.column_stack([fit.predict(np.arange(len(fb)), np.full(len(fb), a)) for a in range(5)])
    np.testing.assert_allclose(v_hat, (dense[:, :, 0] * q_all).sum(axis=1), atol=1e-12)
    data = OPEInputs(reward=fb.reward, pscore=fb.pscore,
                     pi_e=pol.action_probabilities(fb.context_id, fb.action), q_hat=fit.q_hat, v_hat=v_hat)
    iv = DR().estimate_interval(data, alpha=0.001)
    assert iv.low <= sim.policy_value(pol.distribution(np.arange(15))) <= iv.high


def test_reward_model_bad_input():
    fb = LoggedFeedback(action=np.array([0, 1]), reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
                        n_actions=2)
    with pytest.raises(DataValidationError, match=r"n_folds must be an integer in \[2, 2\]"):
        fit_reward_model(fb, LinearRegression(), n_folds=5)
    with pytest.raises(AdapterError, match="needs fit and predict"):
        fit_reward_model(fb, object(), n_folds=2)
    with pytest.raises(DataValidationError, match=r"feedback must be a LoggedFeedback \(harness.datasets\); dict lacks"):
        fit_reward_model({"reward": [1]}, LinearRegression())


def test_reward_model_accepts_xgboost_classifier():
    from xgboost import XGBClassifier
    sim = make_synthetic_bandit(400, n_actions=3, n_contexts=5, seed=9)
    fit = fit_reward_model(sim.feedback, XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1), n_folds=2, seed=0)
    assert fit.q_hat.shape == (400,) and ((fit.q_hat > 0) & (fit.q_hat < 1)).all()
    # the fold-0 model predicts fold-0 rows: refit it independently and compare
    fb, test = sim.feedback, fit.fold == 0
    X = np.hstack([fb.context, np.eye(3)[fb.action]])
    ref = XGBClassifier(n_estimators=5, max_depth=2, n_jobs=1).fit(X[~test], fb.reward[~test])
    np.testing.assert_allclose(fit.q_hat[test], ref.predict_proba(X[test])[:, 1], atol=1e-6)


def test_unsupported_mass_against_a_logging_policy_that_never_shows_some_actions():
    logging = ProbabilityTablePolicy(np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]]))
    target = SoftmaxPolicy(np.zeros((2, 3)), batch_size=1)  # uniform 1/3
    mass = target.unsupported_mass(np.array([0, 1, 1]), logging)
    np.testing.assert_allclose(mass, [1 / 3, 2 / 3, 2 / 3])
    greedy = TopKPolicy(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(greedy.unsupported_mass(np.array([0, 1]), logging), [0.0, 1.0])


def test_reward_model_expected_reward_with_feature_contexts():
    sim = make_synthetic_bandit(300, n_actions=3, n_contexts=6, seed=2)
    fb = sim.feedback
    no_ids = LoggedFeedback(action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=3, context=fb.context)
    fit = fit_reward_model(no_ids, LinearRegression(), n_folds=2, seed=0)
    weights = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.5, 0.5, 0], [0, 0, 0]])
    pol = SoftmaxPolicy(lambda feats: feats @ weights)  # scores from the context features
    v = fit.expected_reward(pol, batch_size=64)
    q_all = np.column_stack([fit.predict(np.arange(300), np.full(300, a)) for a in range(3)])
    np.testing.assert_allclose(v, (pol.distribution_at(fb.context, np.zeros(300, int)) * q_all).sum(axis=1))
    bare = LoggedFeedback(action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=3)
    with pytest.raises(DataValidationError, match=r"contexts: need one per logged row \(300\)"):
        fit_reward_model(bare, LinearRegression(), n_folds=2).expected_reward(pol)
