"""The reward model's all-action predictions in O(batch x n_actions) memory under a budget,
checked against the old one-hot formula (``np.hstack([context, np.eye(n_actions)[a]])``
fed to each fold model's own predict), computed here independently."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeRegressor

from harness.datasets.bandit import LoggedFeedback
from harness.datasets.synthetic_bandit import make_synthetic_bandit
from harness.errors import AdapterError, ConfigError
from harness.models.policies import EpsilonGreedyPolicy, SoftmaxPolicy
from harness.models.reward_model import fit_reward_model


def _old_q_all(fit, fb) -> np.ndarray:
    """q_hat[i, a] the way expected_reward computed it before: one-hot rows from np.eye."""
    n, A = len(fb), fb.n_actions
    act = np.eye(A) if fb.action_context is None else fb.action_context
    out = np.empty((n, A))
    for i in range(n):
        model = fit.models[fit.fold[i]][fb.positions[i]]
        X = np.hstack([np.repeat(fb.context[i][None, :], A, axis=0), act[np.arange(A)]])
        out[i] = model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)
    return out


def _feedback(n_rounds=150, n_actions=6, len_list=2, seed=3, action_context=False):
    sim = make_synthetic_bandit(n_rounds, n_actions=n_actions, len_list=len_list, n_contexts=12, dim=3, seed=seed)
    fb = sim.feedback
    if action_context:
        feats = np.random.default_rng(seed).normal(size=(n_actions, 2))
        fb = LoggedFeedback(action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=n_actions,
                            context_id=fb.context_id, context=fb.context, position=fb.position,
                            len_list=len_list, action_context=feats)
    return sim, fb


MODELS = {
    "logistic": lambda: LogisticRegression(),
    "linear": lambda: LinearRegression(),
    "tree (generic path)": lambda: DecisionTreeRegressor(max_depth=3, random_state=0),
}


@pytest.mark.parametrize("kind", sorted(MODELS))
@pytest.mark.parametrize("action_context", [False, True])
def test_all_action_predictions_equal_the_old_one_hot_formula(kind, action_context):
    sim, fb = _feedback(action_context=action_context)
    fit = fit_reward_model(fb, MODELS[kind](), n_folds=3, seed=1)
    ref = _old_q_all(fit, fb)
    np.testing.assert_allclose(fit.predict_actions(np.arange(len(fb))), ref, rtol=1e-12, atol=1e-12)
    # the logged-action predictions are the old ones too
    np.testing.assert_allclose(fit.q_hat, ref[np.arange(len(fb)), fb.action], rtol=1e-12, atol=1e-12)
    pol = EpsilonGreedyPolicy(sim.q_true[:, :, 0], epsilon=0.2, len_list=2)
    pi = pol.distribution(fb.context_id)[np.arange(len(fb)), :, fb.positions]
    expected = (pi * ref).sum(axis=1)
    np.testing.assert_allclose(fit.expected_reward(pol), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fit.expected_reward(pol, batch_size=7), expected, rtol=1e-12, atol=1e-12)


def test_linear_models_use_the_factorised_path_and_others_do_not():
    _, fb = _feedback()
    assert all(f is not None for per in fit_reward_model(fb, LogisticRegression(), seed=0)._linear for f in per)
    assert all(f is not None for per in fit_reward_model(fb, Ridge(), seed=0)._linear for f in per)
    assert all(f is None for per in fit_reward_model(fb, DecisionTreeRegressor(), seed=0)._linear for f in per)


def test_tiny_budget_gives_the_same_numbers_one_pair_at_a_time():
    sim, fb = _feedback(n_rounds=40)
    big = fit_reward_model(fb, DecisionTreeRegressor(max_depth=2, random_state=0), seed=0)
    tiny = fit_reward_model(fb, DecisionTreeRegressor(max_depth=2, random_state=0), seed=0,
                            max_bytes=10**6, design="sparse")
    tiny.max_bytes = 1  # after the fit: every chunk is one pair, every batch one row
    assert tiny._pair_chunk() == 1 and tiny.batch_rows() == 1
    pol = SoftmaxPolicy(sim.q_true[:, :, 0], temperature=0.3, len_list=2)
    np.testing.assert_allclose(tiny.expected_reward(pol), big.expected_reward(pol), rtol=1e-12)


@pytest.mark.parametrize("kind", ["logistic", "tree (generic path)"])
def test_memory_is_batch_times_actions_not_actions_squared(kind):
    # 1500 actions: the old formula built (batch x 1500) rows of 1500 one-hot columns,
    # 8192 x 1500 x 1500 x 8 bytes = 147 GB per batch; under an 8 MB budget the peak
    # stays a few budgets
    A, n = 1500, 3000
    rng = np.random.default_rng(0)
    fb = LoggedFeedback(action=rng.integers(0, A, n), reward=(rng.random(n) < 0.3).astype(float),
                        pscore=np.full(n, 1 / A), n_actions=A, context_id=rng.integers(0, 50, n),
                        context=rng.normal(size=(n, 4)))
    budget = 8 * 2**20
    fit = fit_reward_model(fb, MODELS[kind](), n_folds=2, seed=0, max_bytes=budget, design="sparse")
    pol = SoftmaxPolicy(rng.normal(size=(50, A)))
    rows = np.arange(200) if kind != "logistic" else np.arange(n)  # the generic path predicts 1500 pairs per row
    tracemalloc.start()
    try:
        q = fit.predict_actions(rows)
        v = fit.expected_reward(pol, contexts=fb.context_id) if kind == "logistic" else None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * budget + q.nbytes, f"peak {peak / 2**20:.1f} MiB"
    if v is not None:  # and the numbers: softmax-weighted q at every row
        z = np.exp(pol.scores[fb.context_id] - pol.scores[fb.context_id].max(axis=1, keepdims=True))
        np.testing.assert_allclose(v, ((z / z.sum(axis=1, keepdims=True)) * q).sum(axis=1), rtol=1e-10)


def test_sparse_design_matches_a_model_fitted_on_an_independent_sparse_matrix():
    _, fb = _feedback(len_list=1, n_rounds=300)
    fit = fit_reward_model(fb, LogisticRegression(), n_folds=2, seed=4, design="sparse")
    X = sp.hstack([sp.csr_matrix(fb.context), sp.csr_matrix(np.eye(fb.n_actions)[fb.action])], format="csr")
    test = fit.fold == 0
    ref = LogisticRegression().fit(X[~test], fb.reward[~test])
    np.testing.assert_allclose(fit.q_hat[test], ref.predict_proba(X[test])[:, 1], rtol=1e-12)


def test_dense_design_over_the_budget_is_refused_with_the_fix():
    _, fb = _feedback(n_rounds=300, len_list=1)
    # 200 training rows x (3 + 6) features x 16 bytes = 28,800 bytes
    with pytest.raises(ConfigError, match=r"dense design matrix needs .* \(200 training rows x 9 features: "
                                          r"3 context \+ 6 action\), over max_bytes=1000 .*design='sparse'"):
        fit_reward_model(fb, LinearRegression(), max_bytes=1000)


@pytest.mark.parametrize("kwargs, match", [
    ({"max_bytes": 0}, "max_bytes must be a positive integer"),
    ({"max_bytes": 2.5}, "max_bytes must be a positive integer"),
    ({"max_bytes": True}, "max_bytes must be a positive integer"),
    ({"design": "csr"}, r"design must be one of \['dense', 'sparse'\], got 'csr'"),
])
def test_bad_budget_options(kwargs, match):
    _, fb = _feedback(n_rounds=20, len_list=1)
    with pytest.raises(ConfigError, match=match):
        fit_reward_model(fb, LinearRegression(), **kwargs)


def test_estimator_that_refuses_sparse_input_is_an_adapter_error():
    class DenseOnly(LinearRegression):
        def fit(self, X, y):
            if sp.issparse(X):
                raise TypeError("sparse input is not supported")
            return super().fit(X, y)

    _, fb = _feedback(n_rounds=20, len_list=1)
    with pytest.raises(AdapterError, match=r"reward model 'DenseOnly' raised TypeError in fit\(\) on the sparse design "
                                           r"\(\d+ rows x 9 features\): sparse input is not supported"):
        fit_reward_model(fb, DenseOnly(), design="sparse")


def test_repeated_contexts_are_computed_once_and_ids_with_different_features_are_not_merged():
    sim, fb = _feedback(n_rounds=200)
    fit = fit_reward_model(fb, DecisionTreeRegressor(max_depth=3, random_state=0), seed=2)
    first, inverse = fit._distinct_rows(fb.context_id)
    assert len(first) <= 3 * 2 * 12 < len(fb)  # folds x positions x contexts
    pol = SoftmaxPolicy(sim.q_true[:, :, 0], temperature=0.7, len_list=2)
    pi = pol.distribution(fb.context_id)[np.arange(len(fb)), :, fb.positions]
    np.testing.assert_allclose(fit.expected_reward(pol), (pi * _old_q_all(fit, fb)).sum(axis=1), rtol=1e-12)
    # one context id for every row but distinct features: no merging, still exact
    same_id = LoggedFeedback(action=fb.action, reward=fb.reward, pscore=fb.pscore, n_actions=fb.n_actions,
                             context_id=np.zeros(len(fb), dtype=np.int64), context=fb.context,
                             position=fb.position, len_list=2)
    fit2 = fit_reward_model(same_id, DecisionTreeRegressor(max_depth=3, random_state=0), seed=2)
    assert fit2._distinct_rows(same_id.context_id) is None
    pi0 = pol.distribution(same_id.context_id)[np.arange(len(fb)), :, fb.positions]
    np.testing.assert_allclose(fit2.expected_reward(pol), (pi0 * _old_q_all(fit2, same_id)).sum(axis=1), rtol=1e-12)


def test_engine_epsilon_greedy_top1_value_through_expected_reward():
    """The engine's v_hat for 'top item per user, epsilon-greedy' -- (1 - eps) q(top) +
    eps mean_a q -- is expected_reward of an EpsilonGreedyPolicy over one-hot scores."""
    sim, fb = _feedback(n_rounds=120, len_list=1)
    fit = fit_reward_model(fb, LogisticRegression(), seed=0)
    rng = np.random.default_rng(5)
    top = rng.integers(0, fb.n_actions, 12)  # each context's recommended item
    eps = 0.25

    def one_hot(ctx):
        s = np.zeros((len(ctx), fb.n_actions))
        s[np.arange(len(ctx)), top[ctx]] = 1.0
        return s

    v = fit.expected_reward(EpsilonGreedyPolicy(one_hot, epsilon=eps), contexts=fb.context_id)
    rows = np.arange(len(fb))
    ref = _old_q_all(fit, fb)
    np.testing.assert_allclose(v, (1 - eps) * ref[rows, top[fb.context_id]] + eps * ref.mean(axis=1), rtol=1e-12)
