"""Exact agreement with trec_eval (pytrec_eval) and scikit-learn on random data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import pytrec_eval
from sklearn.metrics import ndcg_score

from harness.metrics import evaluate_ranking
from harness.metrics import _ranking_kernels

TREC = {  # ours -> trec_eval measure
    "ndcg@10": "ndcg_cut_10", "ndcg@20": "ndcg_cut_20", "ndcg@100": "ndcg_cut_100", "ndcg": "ndcg",
    "recall@10": "recall_10", "recall@100": "recall_100", "precision@10": "P_10",
    "precision@20": "P_20", "map@100": "map_cut_100", "map": "map", "mrr": "recip_rank",
    "r_precision": "Rprec",
}
TREC_MEASURES = {"ndcg_cut.10,20,100", "ndcg", "recall.10,100", "P.10,20", "map_cut.100", "map",
                 "recip_rank", "Rprec"}


def _random_case(seed: int, n_queries: int = 1500, string_ids: bool = False):
    """Graded labels, heavy score ties, unjudged items, queries with nothing relevant,
    queries missing from the run and run-only queries."""
    rng = np.random.default_rng(seed)
    q = np.repeat(np.arange(n_queries), 25)
    qrels = pd.DataFrame({"query_id": q, "item_id": rng.integers(0, 80, q.size)}).drop_duplicates()
    qrels["relevance"] = rng.choice([0, 0, 1, 2, 3], len(qrels))
    run_q = np.repeat(np.arange(50, n_queries + 50), 60)  # queries 0..49 missing, some extra
    run = pd.DataFrame({"query_id": run_q, "item_id": rng.integers(0, 120, run_q.size)}).drop_duplicates()
    run["score"] = rng.integers(0, 8, len(run)).astype(float)  # many ties
    if string_ids:
        for df in (qrels, run):
            df["query_id"] = "q" + df["query_id"].astype(str)
            df["item_id"] = "d" + df["item_id"].astype(str)
    return qrels, run


def _trec(qrels: pd.DataFrame, run: pd.DataFrame) -> dict:
    qd: dict = {}
    for a, b, c in qrels.itertuples(index=False):
        qd.setdefault(str(a), {})[str(b)] = int(c)
    rd: dict = {}
    for a, b, c in run.itertuples(index=False):
        rd.setdefault(str(a), {})[str(b)] = float(c)
    return pytrec_eval.RelevanceEvaluator(qd, TREC_MEASURES).evaluate(rd)


@pytest.mark.parametrize("seed, string_ids, rank_path", [(0, True, "counted"), (1, False, "counted"),
                                                        (2, False, "sorted")])
def test_agrees_with_trec_eval(seed: int, string_ids: bool, rank_path: str, monkeypatch) -> None:
    """``rank_path``: the kernel counts the ranks of a query's few graded items, or reads
    them off a sort of the whole list when there are many (forced here for every query)."""
    if rank_path == "sorted":
        monkeypatch.setattr(_ranking_kernels, "COUNT_RANKS_MAX", -1)
    qrels, run = _random_case(seed, string_ids=string_ids)
    ours = evaluate_ranking(qrels, run, list(TREC), ties="trec_eval")
    theirs = _trec(qrels, run)
    table = ours.per_query
    table.index = table.index.astype(str)
    # trec_eval reports queries in both qrels and run, including those with nothing
    # relevant (as 0); we leave those out of the means and count them
    common = [qid for qid in table.index if qid in theirs]
    assert len(common) > 1000
    for metric, measure in TREC.items():
        expected = np.array([theirs[qid][measure] for qid in common])
        np.testing.assert_allclose(table.loc[common, metric].to_numpy(), expected, rtol=0, atol=1e-9,
                                   err_msg=metric)
    # queries in qrels with a relevant item that the run misses score 0 here
    missing = [qid for qid in table.index if qid not in theirs]
    assert len(missing) == ours.n_missing_from_run > 0
    assert (table.loc[missing].to_numpy() == 0).all()
    no_rel = {str(q) for q, g in qrels.groupby("query_id")["relevance"] if (g == 0).all()}
    assert ours.skipped["no_relevant"] == len(no_rel)
    assert ours.skipped["not_in_qrels"] == len(set(run["query_id"]) - set(qrels["query_id"]))


def test_trec_eval_ties_in_single_precision() -> None:
    """trec_eval stores scores as C floats: scores that differ only in double precision tie,
    and the tie goes to the larger document id string."""
    low, high = 0.7, float(np.nextafter(np.float64(0.7), 1.0))
    qrels = pd.DataFrame({"query_id": "q", "item_id": ["a", "b"], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": "q", "item_id": ["a", "b"], "score": [high, low]})
    theirs = _trec(qrels, run)["q"]["recip_rank"]
    assert theirs == 0.5
    assert evaluate_ranking(qrels, run, ["mrr"], ties="trec_eval").means["mrr"] == theirs
    assert evaluate_ranking(qrels, run, ["mrr"], ties="stable").means["mrr"] == 1.0


def test_agrees_with_trec_eval_on_continuous_scores() -> None:
    rng = np.random.default_rng(11)
    qrels, run = _random_case(11, n_queries=3000)
    run["score"] = rng.random(len(run))  # ~1e-4 of queries have a single-precision tie
    ours = evaluate_ranking(qrels, run, ["ndcg@10", "map@100", "mrr"], ties="trec_eval").per_query
    theirs = _trec(qrels, run)
    common = [q for q in ours.index if str(q) in theirs]
    for metric, measure in (("ndcg@10", "ndcg_cut_10"), ("map@100", "map_cut_100"), ("mrr", "recip_rank")):
        expected = [theirs[str(q)][measure] for q in common]
        np.testing.assert_allclose(ours.loc[common, metric], expected, rtol=0, atol=1e-9)


def test_average_ties_ndcg_agrees_with_scikit_learn() -> None:
    """scikit-learn's ndcg_score averages over tied scores (McSherry & Najork) and judges
    every item of a row; give both the same dense matrices."""
    rng = np.random.default_rng(5)
    n_q, n_items = 300, 12
    y_true = rng.integers(0, 4, (n_q, n_items))
    y_true[:, 0] = np.maximum(y_true[:, 0], 1)  # every query has a relevant item
    y_score = rng.integers(0, 4, (n_q, n_items)).astype(float)  # many ties
    qids, items = np.repeat(np.arange(n_q), n_items), np.tile(np.arange(n_items), n_q)
    qrels = pd.DataFrame({"query_id": qids, "item_id": items, "relevance": y_true.ravel()})
    run = pd.DataFrame({"query_id": qids, "item_id": items, "score": y_score.ravel()})
    for k in (1, 3, 5, 12):
        ours = evaluate_ranking(qrels, run, [f"ndcg@{k}"], ties="average").per_query[f"ndcg@{k}"]
        theirs = [ndcg_score(y_true[i : i + 1], y_score[i : i + 1], k=k) for i in range(n_q)]
        np.testing.assert_allclose(ours.to_numpy(), theirs, rtol=0, atol=1e-12)
    ordered = evaluate_ranking(qrels, run, ["ndcg@5"], ties="stable").per_query["ndcg@5"]
    sk_ignore = [ndcg_score(y_true[i : i + 1], y_score[i : i + 1], k=5, ignore_ties=True) for i in range(n_q)]
    # ignore_ties orders ties arbitrarily, so only tie-free rows must agree
    no_ties = np.array([len(set(row[np.argsort(-row)][:6])) == 6 for row in y_score])
    np.testing.assert_allclose(ordered.to_numpy()[no_ties], np.array(sk_ignore)[no_ties], atol=1e-12)
