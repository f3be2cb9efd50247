"""Stage attribution: Shapley values and interactions of pipeline stages, with intervals.

References in this file are plain loops: the Shapley value as the average marginal
contribution over every order of the stages, the interaction index as its defining sum
over subsets. The synthetic multi-stage world (``harness.datasets.make_multistage``)
plants each stage's effect: the expected metrics of every (retriever, ranker) hybrid
are closed-form, so the planted Shapley values and interaction are known exactly.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from harness.adapters.pipeline import Pipeline
from harness.datasets import make_multistage
from harness.errors import AdapterError, ConfigError, DataValidationError
from harness.evaluate.attribution import differing_stages, evaluate_hybrids
from harness.inference.attribution import infer_terms, term_columns
from harness.metrics.attribution import (AttributionTerm, attribute, attribution_plan, interaction_coefficients,
                                         parse_term, sampled_coefficients, shapley_coefficients)


# ----------------------------------------------------------------------------- references


def brute_shapley(v: dict[frozenset, float], players: list[int]) -> list[float]:
    """Average marginal contribution of each player over all s! orders."""
    total = {p: 0.0 for p in players}
    orders = list(itertools.permutations(players))
    for order in orders:
        before: set[int] = set()
        for p in order:
            total[p] += v[frozenset(before | {p})] - v[frozenset(before)]
            before.add(p)
    return [total[p] / len(orders) for p in players]


def brute_interaction(v: dict[frozenset, float], players: list[int], i: int, j: int) -> float:
    """Grabisch-Roubens: sum over S of N minus {i, j} of |S|!(s-|S|-2)!/(s-1)! times the 2x2 difference."""
    s = len(players)
    rest = [p for p in players if p not in (i, j)]
    out = 0.0
    for size in range(len(rest) + 1):
        for subset in itertools.combinations(rest, size):
            S = frozenset(subset)
            w = math.factorial(size) * math.factorial(s - size - 2) / math.factorial(s - 1)
            out += w * (v[S | {i, j}] - v[S | {i}] - v[S | {j}] + v[S])
    return out


def as_game(values: np.ndarray, s: int) -> dict[frozenset, float]:
    return {frozenset(p for p in range(s) if m >> p & 1): float(values[m]) for m in range(1 << s)}


# ----------------------------------------------------------------------------- numerics


@pytest.mark.parametrize("s", [1, 2, 3, 4, 5])
def test_exact_shapley_and_interactions_equal_the_brute_force_definitions(s: int) -> None:
    rng = np.random.default_rng(s)
    values = rng.normal(size=(3, 1 << s))  # three units, every coalition
    plan = attribution_plan(s)
    terms = attribute(values, plan)
    # the difference form equals the coefficient form
    np.testing.assert_allclose(terms.shapley, values @ plan.shapley, atol=1e-12)
    np.testing.assert_allclose(terms.interactions, values @ plan.interactions, atol=1e-12)
    for u in range(3):
        game = as_game(values[u], s)
        assert terms.shapley[u] == pytest.approx(brute_shapley(game, list(range(s))), abs=1e-12)
        expected = [brute_interaction(game, list(range(s)), i, j) for i, j in plan.pairs]
        assert terms.interactions[u] == pytest.approx(expected, abs=1e-12)
        # efficiency: the stages' values add up to the total change, exactly
        assert terms.shapley[u].sum() == pytest.approx(values[u, -1] - values[u, 0], abs=1e-12)
        assert terms.total[u] == values[u, -1] - values[u, 0]


def test_two_stage_interaction_is_the_difference_in_differences() -> None:
    v = np.array([[0.3, 0.4, 0.3, 0.6]])  # v(00), v(retriever), v(ranker), v(both)
    terms = attribute(v, attribution_plan(2))
    assert terms.interactions[0, 0] == pytest.approx((0.6 - 0.4) - (0.3 - 0.3))
    assert shapley_coefficients(2).sum(axis=1).tolist() == [-1.0, 0.0, 0.0, 1.0]
    assert interaction_coefficients(3).shape == (8, 3)


def test_sampled_orders_keep_efficiency_exactly_and_are_unbiased() -> None:
    s, n_perm = 6, 4000
    rng = np.random.default_rng(0)
    v = rng.normal(size=1 << s)
    plan = attribution_plan(s, max_exact=5, n_permutations=n_perm, seed=3)
    assert not plan.exact and plan.n_permutations == n_perm
    terms = attribute(v[plan.masks][None, :], plan)
    assert terms.shapley.sum() == pytest.approx(v[-1] - v[0], abs=1e-12)
    exact = attribute(v[None, :], attribution_plan(s, max_exact=6))
    # Monte Carlo error of a mean over n_perm orders: the SD of one order's marginal
    # contribution (over all 720 orders) / sqrt(n_perm); 5 SE bounds every stage
    game = as_game(v, s)
    for p in range(s):
        marg = []
        for order in itertools.permutations(range(s)):
            before = frozenset(order[: order.index(p)])
            marg.append(game[before | {p}] - game[before])
        se = np.std(marg) / math.sqrt(n_perm)
        assert abs(terms.shapley[0, p] - exact.shapley[0, p]) < 5 * se
    # interactions: a mean of the 2x2 difference Delta_ij(S) over the orders where i and j
    # are adjacent (about 2 n_perm / s of them), S drawn with weight w2(|S|); 5 SE, with the
    # exact SD of Delta_ij(S) under those weights and a conservative 0.8 x the expected count
    for col, (i, j) in enumerate(plan.pairs):
        rest = [p for p in range(s) if p not in (i, j)]
        deltas, weights = [], []
        for size in range(len(rest) + 1):
            for subset in itertools.combinations(rest, size):
                S = frozenset(subset)
                deltas.append(game[S | {i, j}] - game[S | {i}] - game[S | {j}] + game[S])
                weights.append(math.factorial(size) * math.factorial(s - size - 2) / math.factorial(s - 1))
        d, w = np.array(deltas), np.array(weights)
        assert w.sum() == pytest.approx(1.0) and d @ w == pytest.approx(exact.interactions[0, col])
        se = math.sqrt(w @ (d - d @ w) ** 2) / math.sqrt(0.8 * 2 * n_perm / s)
        assert abs(terms.interactions[0, col] - exact.interactions[0, col]) < 5 * se


def test_a_pair_never_adjacent_in_the_sample_has_no_interaction() -> None:
    masks, _, inter = sampled_coefficients(7, 1, seed=0)  # one order: 6 of 21 pairs adjacent
    assert np.isnan(inter).any(axis=0).sum() == 21 - 6
    assert 0 in masks and (1 << 7) - 1 in masks


@pytest.mark.parametrize("values, match", [
    (np.zeros((3, 3)), r"shape \(n_units, 4\)"),
    (np.array([[0.0, np.nan, 0.0, 1.0]]), "1 values are NaN or infinite"),
])
def test_bad_values_are_refused(values: np.ndarray, match: str) -> None:
    with pytest.raises(DataValidationError, match=match):
        attribute(values, attribution_plan(2))


def test_term_labels_round_trip_and_malformed_ones_are_refused() -> None:
    term = AttributionTerm("interaction", ("retrieval", "ranking"), "ndcg@10")
    assert term.label == "interaction/retrieval/ranking/ndcg@10"
    assert parse_term(term.label) == term
    assert parse_term("ndcg@10") is None and parse_term("retrieval/recall@100") is None
    with pytest.raises(ConfigError, match=r"expected shapley/<stage>/<metric>"):
        parse_term("shapley/ndcg@10")


# ----------------------------------------------------------------------------- the world


R, N = 10, 50
RECALLS = {"baseline": "recall=0.5", "candidate": "recall=1"}
QUALITY = {"baseline": 0.2, "candidate": 0.8}
METRICS = ["ndcg@10", "recall@10"]


def world(n_users: int = 3000, seed: int = 0):
    return make_multistage(n_users=n_users, n_items=200, n_relevant=R, n_candidates=N,
                           retriever_recalls=(0.5, 1.0), seed=seed)


def pipelines(w, *, ranker_seeds=(1, 2), quality=QUALITY):
    base = Pipeline([("retrieval", w.retriever(RECALLS["baseline"]), N),
                     ("ranking", w.ranker(quality["baseline"], seed=ranker_seeds[0]), 10)], name="base")
    cand = Pipeline([("retrieval", w.retriever(RECALLS["candidate"]), N),
                     ("ranking", w.ranker(quality["candidate"], seed=ranker_seeds[1]), 10)], name="cand")
    return base, cand


def planted(w, metric: str) -> dict[str, float]:
    """Closed-form Shapley values and interaction of the expected metric."""
    name, k = metric.split("@")
    v = {(r, p): w.expected(name, int(k), retriever=RECALLS[r], ranker_quality=QUALITY[p])
         for r in RECALLS for p in QUALITY}
    b, c = "baseline", "candidate"
    return {"retrieval": 0.5 * ((v[c, b] - v[b, b]) + (v[c, c] - v[b, c])),
            "ranking": 0.5 * ((v[b, c] - v[b, b]) + (v[c, c] - v[c, b])),
            "interaction": v[c, c] - v[c, b] - v[b, c] + v[b, b], "total": v[c, c] - v[b, b]}


def run_world(w, base, cand, *, n_resamples=1000, seed=0, **kwargs):
    players = differing_stages(base, cand)
    plan = attribution_plan(len(players))
    hv = evaluate_hybrids(base, cand, w.dataset.qrels, np.arange(w.dataset.n_users), METRICS, plan.masks,
                          batch_size=700, **kwargs)
    cols = term_columns(hv, plan, players)
    rows = infer_terms(cols, baseline="base", candidate="cand", n_resamples=n_resamples, seed=seed)
    return hv, plan, cols, {r.metric: r for r in rows}


@pytest.fixture(scope="module")
def two_stage():
    w = world()
    base, cand = pipelines(w)
    return (w, *run_world(w, base, cand))


def test_planted_stage_effects_are_recovered_within_their_intervals(two_stage) -> None:
    w, hv, plan, cols, rows = two_stage
    for metric in METRICS:
        truth = planted(w, metric)
        for stage in ("retrieval", "ranking"):
            r = rows[f"shapley/{stage}/{metric}"]
            assert r.ci_low <= truth[stage] <= r.ci_high, (metric, stage, r.delta, truth[stage])
            assert r.ci_low > 0  # both stages improve both metrics in this world
        total = rows[f"total/{metric}"]
        assert total.ci_low <= truth["total"] <= total.ci_high
        # efficiency, on the estimates and on every unit
        s = rows[f"shapley/retrieval/{metric}"].delta + rows[f"shapley/ranking/{metric}"].delta
        assert s == pytest.approx(total.delta, abs=1e-12)


def test_the_planted_interaction_is_detected(two_stage) -> None:
    w, hv, plan, cols, rows = two_stage
    for metric in METRICS:
        truth = planted(w, metric)["interaction"]
        assert truth > 0.1  # the better ranker helps more with the better retriever
        r = rows[f"interaction/retrieval/ranking/{metric}"]
        assert r.ci_low > 0 and r.ci_low <= truth <= r.ci_high and r.p_two_sided < 0.01


def test_one_resample_serves_every_term_so_resampled_shapley_values_sum_to_the_resampled_total(two_stage) -> None:
    *_, rows = two_stage
    for metric in METRICS:
        parts = [rows[f"shapley/{s}/{metric}"].inference.replicates for s in ("retrieval", "ranking")]
        total = rows[f"total/{metric}"].inference.replicates
        assert len(total) == 1000
        np.testing.assert_allclose(parts[0] + parts[1], total, atol=1e-12)


def test_per_query_values_match_a_hand_built_hybrid(two_stage) -> None:
    from harness.metrics import evaluate_ranking

    w, hv, plan, cols, rows = two_stage
    base, cand = pipelines(w)
    # hybrid 01 (bit 0 = retrieval from the candidate), built by hand from the two pipelines
    mixed = base.replace("retrieval", cand.stage("retrieval").model)
    ranking = mixed.run(np.arange(w.dataset.n_users))["ranking"]
    ref = evaluate_ranking(w.dataset.qrels, ranking, METRICS).per_query
    col = list(plan.masks).index(1)
    for m in METRICS:
        np.testing.assert_allclose(hv.values[m][:, col], ref[m].reindex(hv.query_ids).to_numpy(), atol=1e-12)


def test_ceiling_separates_retrieval_limited_from_ranking_limited_loss(two_stage) -> None:
    w, hv, plan, cols, rows = two_stage
    # an oracle over m relevant candidates of R = 10 gets recall@10 = m / 10 for every user:
    # the loss left by retrieval goes from 0.5 (recall 0.5) to 0 (recall 1)
    r = rows["retrieval_limited/recall@10"]
    assert r.delta == pytest.approx(-0.5, abs=1e-12) and r.ci_low == pytest.approx(-0.5, abs=1e-12)
    c = hv.ceiling["recall@10"].mean(axis=0)
    assert c.tolist() == pytest.approx([1.0, 0.5, 1.0, 1.0], abs=1e-12)
    # ranking-limited loss: oracle - actual per side, closed form from the world
    exp_b = 0.5 - w.expected("recall", 10, retriever=RECALLS["baseline"], ranker_quality=0.2)
    exp_c = 1.0 - w.expected("recall", 10, retriever=RECALLS["candidate"], ranker_quality=0.8)
    ranking = rows["ranking_limited/recall@10"]
    assert ranking.ci_low <= exp_c - exp_b <= ranking.ci_high
    # the two loss changes add up to minus the total change (the ideal is the same)
    assert r.delta + ranking.delta == pytest.approx(-rows["total/recall@10"].delta, abs=1e-12)


def test_identical_stages_get_zero_with_an_interval_that_covers_zero() -> None:
    w = world(n_users=1500)
    # the same ranker behaviour in two objects: a differing stage by identity, 0 by construction
    base, cand = pipelines(w, ranker_seeds=(5, 5), quality={"baseline": 0.5, "candidate": 0.5})
    _, _, cols, rows = run_world(w, base, cand)
    for metric in METRICS:
        r = rows[f"shapley/ranking/{metric}"]
        assert r.delta == 0.0 and r.ci_low <= 0.0 <= r.ci_high
        assert rows[f"interaction/retrieval/ranking/{metric}"].delta == 0.0
    # same quality, another coin per user: 0 in expectation, covered by the interval
    base, cand = pipelines(w, ranker_seeds=(5, 6), quality={"baseline": 0.5, "candidate": 0.5})
    _, _, _, rows = run_world(w, base, cand)
    for metric in METRICS:
        r = rows[f"shapley/ranking/{metric}"]
        assert r.delta != 0.0 and r.ci_low < 0.0 < r.ci_high


def test_a_shared_stage_object_is_not_a_player_and_reuse_saves_stage_runs() -> None:
    w = world(n_users=400)
    base, cand = pipelines(w)
    same = cand.replace("ranking", base.stage("ranking").model)
    assert differing_stages(base, same) == ["retrieval"]
    assert differing_stages(base, cand) == ["retrieval", "ranking"]
    hv, plan, _, _ = run_world(w, base, cand)
    # 2 retrievals + 4 (retriever, ranker) pairs per batch of 700 queries, instead of 4 x 2
    batches = math.ceil(400 / 700)
    assert (hv.cache.stage_calls, hv.cache.naive_stage_calls) == (6 * batches, 8 * batches)
    assert 0 < hv.cache.share_saved < 1
    fresh, _, _, _ = run_world(w, base, cand, reuse=False)
    assert fresh.cache.stage_calls == fresh.cache.naive_stage_calls == 8 * batches
    for m in METRICS:
        np.testing.assert_array_equal(fresh.values[m], hv.values[m])


def test_a_hybrid_whose_stage_sizes_do_not_nest_is_a_config_error() -> None:
    w = world(n_users=50)
    base = Pipeline([("retrieval", w.retriever("recall=0.5"), 20), ("ranking", w.ranker(0.2), 20)])
    cand = Pipeline([("retrieval", w.retriever("recall=1"), 50), ("ranking", w.ranker(0.8), 40)])
    # retrieval from the baseline (20 candidates) with the candidate's ranker (keeps 40)
    with pytest.raises(ConfigError, match="stage 'ranking' keeps k=40 but receives only 20"):
        evaluate_hybrids(base, cand, w.dataset.qrels, np.arange(50), METRICS, attribution_plan(2).masks)


def test_pipelines_with_other_stage_names_are_refused() -> None:
    w = world(n_users=50)
    base, cand = pipelines(w)
    other = Pipeline([("retrieve", w.retriever("recall=1"), N), ("ranking", w.ranker(0.8), 10)])
    with pytest.raises(ConfigError, match=r"same stage names in the same order"):
        differing_stages(base, other)


def test_a_failing_stage_names_the_hybrid_and_the_queries() -> None:
    w = world(n_users=50)
    base, cand = pipelines(w)

    def broken(candidates, k):
        raise RuntimeError("boom")

    cand = cand.replace("ranking", broken)
    with pytest.raises(AdapterError, match=r"hybrid\(retrieval=baseline, ranking=candidate\).*boom.*queries 0\.\.49"):
        evaluate_hybrids(base, cand, w.dataset.qrels, np.arange(50), METRICS, attribution_plan(2).masks)


def test_six_differing_stages_use_sampled_orders_and_stay_efficient() -> None:
    w = world(n_users=200)
    ks = [N, 40, 30, 20, 15, 10]
    base = Pipeline([("retrieval", w.retriever("recall=0.5"), N)]
                    + [(f"rank{i}", w.ranker(0.2, seed=i), k) for i, k in enumerate(ks[1:], 1)])
    cand = Pipeline([("retrieval", w.retriever("recall=1"), N)]
                    + [(f"rank{i}", w.ranker(0.7, seed=10 + i), k) for i, k in enumerate(ks[1:], 1)])
    players = differing_stages(base, cand)
    plan = attribution_plan(len(players), max_exact=5, n_permutations=30, seed=0)
    assert not plan.exact and len(plan.masks) < 64
    hv = evaluate_hybrids(base, cand, w.dataset.qrels, np.arange(200), ["ndcg@10"], plan.masks, ceiling=False)
    cols = term_columns(hv, plan, players)
    rows = {r.metric: r for r in infer_terms(cols, baseline="b", candidate="c", n_resamples=200)}
    total = rows["total/ndcg@10"].delta
    assert sum(rows[f"shapley/{p}/ndcg@10"].delta for p in players) == pytest.approx(total, abs=1e-12)


# ----------------------------------------------------------------------------- coverage


@pytest.mark.slow
def test_attribution_intervals_cover_the_planted_values_95_percent_of_the_time() -> None:
    """1000 independent samples of 200 users (disjoint blocks of one 200k-user world, users
    are iid there); each sample's 95% intervals (500 paired-bootstrap resamples) of the
    total, both Shapley values and the interaction, for nDCG@10 and recall@10, against
    the closed-form planted values. Monte Carlo SE of one term's coverage at 95% over 1000
    samples: sqrt(.95 .05 / 1000) = 0.69 points, so the 93-97% band is +-2.9 SE (measured:
    94.8-95.5% for the eight terms)."""
    n_rep, n = 1000, 200
    w = make_multistage(n_users=n_rep * n, n_items=100, n_relevant=R, n_candidates=N,
                        retriever_recalls=(0.5, 1.0), seed=11)
    base, cand = pipelines(w, ranker_seeds=(3, 4))
    players = differing_stages(base, cand)
    plan = attribution_plan(len(players))
    hv = evaluate_hybrids(base, cand, w.dataset.qrels, np.arange(n_rep * n), METRICS, plan.masks,
                          batch_size=50_000, ceiling=False)
    assert len(hv.query_ids) == n_rep * n  # every user has R relevant items
    truth = {}
    for metric in METRICS:
        p = planted(w, metric)
        truth.update({f"total/{metric}": p["total"], f"shapley/retrieval/{metric}": p["retrieval"],
                      f"shapley/ranking/{metric}": p["ranking"],
                      f"interaction/retrieval/ranking/{metric}": p["interaction"]})
    covered = {label: 0 for label in truth}
    for rep in range(n_rep):
        block = slice(rep * n, (rep + 1) * n)
        sample = type(hv)(hv.query_ids[block], hv.masks, {m: v[block] for m, v in hv.values.items()}, None)
        rows = infer_terms(term_columns(sample, plan, players), baseline="b", candidate="c",
                           n_resamples=500, seed=rep)
        for r in rows:
            covered[r.metric] += r.ci_low <= truth[r.metric] <= r.ci_high
    rates = {label: c / n_rep for label, c in covered.items()}
    print("coverage at 95%:", {k: f"{v:.3f}" for k, v in rates.items()})
    for label, rate in rates.items():
        assert 0.93 <= rate <= 0.97, (label, rate)
