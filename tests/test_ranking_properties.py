"""Property tests: bounds, ideal rankings, invariances, and exact tie-averaging."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics import evaluate_ranking

METRICS = ["ndcg@3", "ndcg@6", "dcg@4", "recall@3", "precision@2", "map@5", "mrr@4", "hit_rate@2",
           "f1@3", "r_precision", "map", "mrr", "ndcg"]
BOUNDED = [m for m in METRICS if not m.startswith("dcg")]


@st.composite
def cases(draw, max_items: int = 7):
    """One to four queries with graded judgments and integer scores (ties likely)."""
    n_q = draw(st.integers(1, 4))
    rows_q, rows_r = [], []
    for q in range(n_q):
        n = draw(st.integers(1, max_items))
        rels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        if not any(rels):
            rels[0] = 1
        scores = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        n_judged = draw(st.integers(1, n))
        for i in range(n):
            if i < n_judged:
                rows_q.append((q, i, rels[i]))
            rows_r.append((q, i, float(scores[i])))
    return (pd.DataFrame(rows_q, columns=["query_id", "item_id", "relevance"]),
            pd.DataFrame(rows_r, columns=["query_id", "item_id", "score"]))


@settings(max_examples=150, deadline=None)
@given(cases())
def test_bounds_and_ideal(case) -> None:
    qrels, run = case
    values = evaluate_ranking(qrels, run, BOUNDED).per_query
    assert ((values >= -1e-12) & (values <= 1 + 1e-12)).all().all()
    # scoring by the judgments themselves is ideal: nDCG = 1
    ideal = qrels.rename(columns={"relevance": "score"}).astype({"score": float})
    assert np.allclose(evaluate_ranking(qrels, ideal, ["ndcg@3", "ndcg"]).per_query, 1.0)


@settings(max_examples=100, deadline=None)
@given(cases(), st.randoms(use_true_random=False))
def test_invariant_to_row_order_and_id_relabelling(case, rnd) -> None:
    qrels, run = case
    base = evaluate_ranking(qrels, run, METRICS, ties="average").per_query
    shuffled = run.sample(frac=1.0, random_state=rnd.randint(0, 10**6))
    reordered = evaluate_ranking(qrels.iloc[::-1], shuffled, METRICS, ties="average").per_query
    np.testing.assert_allclose(reordered.sort_index().to_numpy(), base.sort_index().to_numpy(), atol=1e-12)
    # relabelling ids changes nothing when ties are averaged (order of ids is irrelevant)
    perm = {i: f"item-{rnd.randint(0, 10**9)}-{i}" for i in range(10)}
    q2 = qrels.assign(item_id=qrels.item_id.map(perm), query_id="u" + qrels.query_id.astype(str))
    r2 = run.assign(item_id=run.item_id.map(perm), query_id="u" + run.query_id.astype(str))
    relabelled = evaluate_ranking(q2, r2, METRICS, ties="average").per_query
    np.testing.assert_allclose(relabelled.to_numpy(), base.to_numpy(), atol=1e-12)


def _plain_metrics(rels: list[int], n_rel: int, ideal: list[int]) -> dict[str, float]:
    """Slow, obvious reference of every metric for one fully ordered list."""
    def dcg(values, k):
        return sum(v / np.log2(i + 2) for i, v in enumerate(values[:k]))

    b = [1 if r >= 1 else 0 for r in rels]
    out = {}
    for k in (3, 6):
        out[f"ndcg@{k}"] = dcg(rels, k) / dcg(ideal, k)
    out["ndcg"] = dcg(rels, len(rels)) / dcg(ideal, len(ideal))
    out["dcg@4"] = dcg(rels, 4)
    out["recall@3"] = sum(b[:3]) / n_rel
    out["precision@2"] = sum(b[:2]) / 2
    for name, k in (("map@5", 5), ("map", len(b))):
        out[name] = sum(sum(b[: i + 1]) / (i + 1) for i in range(min(k, len(b))) if b[i]) / n_rel
    first = next((i for i, x in enumerate(b) if x), None)
    out["mrr@4"] = 1 / (first + 1) if first is not None and first < 4 else 0.0
    out["mrr"] = 1 / (first + 1) if first is not None else 0.0
    out["hit_rate@2"] = float(sum(b[:2]) > 0)
    p, r = sum(b[:3]) / 3, sum(b[:3]) / n_rel
    out["f1@3"] = 2 * p * r / (p + r) if p + r else 0.0
    out["r_precision"] = sum(b[:n_rel]) / n_rel
    return out


@settings(max_examples=120, deadline=None)
@given(cases(max_items=6))
def test_average_ties_equal_mean_over_all_orders(case) -> None:
    qrels, run = case
    ours = evaluate_ranking(qrels, run, METRICS, ties="average").per_query
    for q, group in run.groupby("query_id"):
        judged = dict(zip(qrels[qrels.query_id == q].item_id, qrels[qrels.query_id == q].relevance))
        n_rel = sum(1 for v in judged.values() if v >= 1)
        if n_rel == 0:  # left out of the evaluation, as documented
            assert q not in ours.index
            continue
        ideal = sorted(judged.values(), reverse=True)
        items = group.item_id.tolist()
        scores = dict(zip(group.item_id, group.score))
        totals: dict[str, float] = {}
        count = 0
        for perm in itertools.permutations(items):
            if any(scores[perm[i]] < scores[perm[i + 1]] for i in range(len(perm) - 1)):
                continue  # only orders consistent with the scores
            count += 1
            for name, value in _plain_metrics([judged.get(i, 0) for i in perm], n_rel, ideal).items():
                totals[name] = totals.get(name, 0.0) + value
        for name in METRICS:
            assert ours.loc[q, name] == pytest.approx(totals[name] / count, abs=1e-12), (name, q)
