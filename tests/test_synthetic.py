"""Synthetic worlds: their stated truths against Monte Carlo and exact enumeration."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.types import Ranking
from harness.datasets import make_multistage, make_synthetic
from harness.datasets.synthetic import RELEVANCE_QUANTILES, sample_without_replacement
from harness.errors import ConfigError
from harness.metrics import evaluate_ranking


def test_relevance_is_monotone_in_affinity_with_stated_shares() -> None:
    ds = make_synthetic(n_users=200, n_items=150, dim=8, seed=3)
    a, rel = ds.truth["true_scores"].ravel(), ds.truth["true_relevance"].ravel()
    order = np.argsort(a, kind="stable")
    assert (np.diff(rel[order]) >= 0).all()
    n = a.size
    for grade, q in enumerate(RELEVANCE_QUANTILES, start=1):
        assert abs((rel >= grade).mean() - (1 - q)) <= 2 / n


def test_qrels_are_every_unseen_relevant_item() -> None:
    ds = make_synthetic(n_users=50, n_items=80, dim=4, n_train_per_user=10, seed=1)
    rel = ds.truth["true_relevance"].copy()
    seen = np.zeros_like(rel, dtype=bool)
    seen[ds.train["user_id"], ds.train["item_id"]] = True
    want = {(u, i, rel[u, i]) for u, i in zip(*np.nonzero((rel > 0) & ~seen))}
    got = set(ds.qrels[["query_id", "item_id", "relevance"]].itertuples(index=False, name=None))
    assert got == want
    assert (ds.train.groupby("user_id").size() == 10).all()


def test_gumbel_top_k_inclusion_probabilities() -> None:
    """P(item j among 2 draws without replacement) = p_j + sum_{i != j} p_i p_j / (1 - p_i)."""
    logits = np.array([1.0, 0.2, -0.5, 0.0, 2.0])
    p = np.exp(logits) / np.exp(logits).sum()
    exact = np.array([p[j] + sum(p[i] * p[j] / (1 - p[i]) for i in range(5) if i != j) for j in range(5)])
    first_exact = p
    n = 200_000
    draws = sample_without_replacement(np.broadcast_to(logits, (n, 5)), 2, np.random.default_rng(0))
    inclusion = np.bincount(draws.ravel(), minlength=5) / n
    first = np.bincount(draws[:, 0], minlength=5) / n
    se = np.sqrt(exact * (1 - exact) / n)
    assert np.all(np.abs(inclusion - exact) < 5 * se)
    assert np.all(np.abs(first - first_exact) < 5 * np.sqrt(p * (1 - p) / n))
    # ordered pairs: P(i then j) = p_i p_j / (1 - p_i)
    pairs = np.bincount(draws[:, 0] * 5 + draws[:, 1], minlength=25).reshape(5, 5) / n
    for i, j in itertools.permutations(range(5), 2):
        pij = p[i] * p[j] / (1 - p[i])
        assert abs(pairs[i, j] - pij) < 5 * np.sqrt(pij * (1 - pij) / n) + 1e-4


def test_cold_temperature_trains_on_the_true_top_items() -> None:
    ds = make_synthetic(n_users=30, n_items=40, dim=4, n_train_per_user=5, temperature=1e-6, seed=2)
    top = np.sort(np.argsort(-ds.truth["true_scores"], axis=1)[:, :5], axis=1)
    got = np.sort(ds.train["item_id"].to_numpy().reshape(30, 5), axis=1)
    np.testing.assert_array_equal(got, top)


# ---------------------------------------------------------------- multi-stage world
def evaluate(world, retriever: str, quality: float, seed: int, k: int):
    items, scores = world.rank(retriever, ranker_quality=quality, seed=seed)
    ranking = Ranking(np.arange(world.dataset.n_users), items, scores)
    names = [f"{m}@{k}" for m in ("recall", "precision", "ndcg", "hit_rate")]
    return evaluate_ranking(world.dataset.qrels, ranking, names).per_query


@pytest.mark.parametrize("retriever", ["recall=0.5", "recall=0.8", "recall=1"])
def test_perfect_ranker_is_exact(retriever: str) -> None:
    world = make_multistage(n_users=50, n_items=200, n_relevant=10, n_candidates=40, seed=1)
    for k in (5, 10, 20):
        per_query = evaluate(world, retriever, 1.0, 0, k)
        for metric in ("recall", "precision", "ndcg", "hit_rate"):
            got = per_query[f"{metric}@{k}"].to_numpy()
            want = world.expected(metric, k, retriever=retriever, ranker_quality=1.0)
            np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("quality", [0.0, 0.3, 0.7])
def test_expected_metrics_match_monte_carlo(quality: float) -> None:
    world = make_multistage(n_users=6000, n_items=120, n_relevant=8, n_candidates=30,
                            retriever_recalls=(0.5, 1.0), seed=2)
    k = 10
    for retriever in world.retrievers:
        per_query = evaluate(world, retriever, quality, 7, k)
        for metric in ("recall", "precision", "ndcg", "hit_rate"):
            values = per_query[f"{metric}@{k}"].to_numpy()
            want = world.expected(metric, k, retriever=retriever, ranker_quality=quality)
            se = values.std(ddof=1) / np.sqrt(len(values))
            assert abs(values.mean() - want) < 4 * se + 1e-12, (retriever, metric, values.mean(), want)


def test_hypergeometric_hit_rate_by_enumeration() -> None:
    world = make_multistage(n_users=10, n_items=40, n_relevant=2, n_candidates=6, retriever_recalls=(1.0,),
                            seed=0)
    # 2 relevant among 6 candidates in random order, k = 3: count orderings by brute force
    hits = [any(x < 2 for x in perm[:3]) for perm in itertools.permutations(range(6))]
    assert world.expected("hit_rate", 3, retriever="recall=1", ranker_quality=0.0) == pytest.approx(np.mean(hits))


def test_stage_effects_are_known_and_ordered() -> None:
    world = make_multistage(seed=0)
    base = world.expected("ndcg", 10, retriever="recall=0.5", ranker_quality=0.5)
    better_retriever = world.expected("ndcg", 10, retriever="recall=1", ranker_quality=0.5)
    better_ranker = world.expected("ndcg", 10, retriever="recall=0.5", ranker_quality=0.9)
    assert better_retriever > base and better_ranker > base
    # a ranker's effect is linear in its quality
    mid = world.expected("ndcg", 10, retriever="recall=0.5", ranker_quality=0.7)
    assert mid - base == pytest.approx(better_ranker - mid)
    # candidates: nested relevant sets, nothing seen in training is a candidate
    truth = world.dataset.truth["true_relevance"]
    rows = np.arange(world.dataset.n_users)[:, None]
    for name, cands in world.retrievers.items():
        assert (truth[rows, cands].sum(axis=1) == world.relevant_retrieved[name]).all()
    train = set(zip(world.dataset.train["user_id"], world.dataset.train["item_id"]))
    for cands in world.retrievers.values():
        assert not train & {(u, i) for u in range(cands.shape[0]) for i in cands[u]}


def test_multistage_errors() -> None:
    with pytest.raises(ConfigError, match="n_relevant"):
        make_multistage(n_relevant=60, n_candidates=50)
    with pytest.raises(ConfigError, match="too small"):
        make_multistage(n_items=50)
    world = make_multistage(n_users=5, n_items=100, n_candidates=20, seed=0)
    with pytest.raises(ConfigError, match="unknown retriever"):
        world.rank("best", ranker_quality=1.0)
    with pytest.raises(ConfigError, match="no closed form"):
        world.expected("map", 10, retriever="recall=1", ranker_quality=1.0)
    with pytest.raises(ConfigError, match="ranker_quality"):
        world.rank("recall=1", ranker_quality=1.5)


def test_true_click_probabilities_match_simulated_clicks() -> None:
    from harness.datasets.synthetic_clicks import CLICK_BASE_RATE, make_click_log

    ds = make_synthetic(n_users=400, n_items=100, dim=4, seed=5)
    p = ds.truth["true_click_prob"]
    assert p.shape == (400, 100) and ((p > 0) & (p < 1)).all()
    # monotone in the affinity, and a pair of average affinity clicks at the base rate
    order = np.argsort(ds.truth["true_scores"].ravel())
    assert (np.diff(p.ravel()[order]) >= 0).all()
    a = ds.truth["true_scores"]
    z0 = np.unravel_index(np.argmin(np.abs(a - a.mean())), a.shape)
    assert p[z0] == pytest.approx(CLICK_BASE_RATE, abs=1e-3)
    log = make_click_log(ds, n_per_user=50, seed=1)
    np.testing.assert_array_equal(log["true_p"], p[log["query_id"], log["item_id"]])
    # Monte Carlo: per decile of p, the observed click rate matches the mean true p
    bins = np.quantile(log["true_p"], np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, log["true_p"], side="right") - 1, 0, 9)
    for b in range(10):
        sel = which == b
        want = log["true_p"][sel].mean()
        se = np.sqrt(want * (1 - want) / sel.sum())
        assert abs(log["label"][sel].mean() - want) < 4.5 * se
