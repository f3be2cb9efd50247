"""Ranking metrics on hand-computed tiny cases, bad inputs, and API equivalences."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from harness.types import Ranking
from harness.errors import ConfigError, DataValidationError
from harness.metrics import evaluate_ranking, metric_curves

L2 = math.log2


@pytest.fixture
def one_query():
    # judged: a=3, b=0, c=1, d=2, e=1 (R = 4 relevant: a, c, d, e); unjudged x
    qrels = pd.DataFrame({"query_id": "q", "item_id": list("abcde"), "relevance": [3, 0, 1, 2, 1]})
    # ranked: x (unjudged), c, b, a, d
    run = pd.DataFrame({"query_id": "q", "item_id": list("xcbad"), "score": [5.0, 4, 3, 2, 1]})
    return qrels, run


def _one(qrels, run, metric, **kw) -> float:
    return evaluate_ranking(qrels, run, [metric], **kw).means[metric]


def test_hand_computed_values(one_query) -> None:
    qrels, run = one_query
    rels = [0, 1, 0, 3, 2]  # grades down the ranking
    dcg5 = sum(r / L2(i + 2) for i, r in enumerate(rels))
    idcg5 = 3 / L2(2) + 2 / L2(3) + 1 / L2(4) + 1 / L2(5)
    cases = {
        "dcg@5": dcg5,
        "ndcg@5": dcg5 / idcg5,
        "ndcg@2": (1 / L2(3)) / (3 / L2(2) + 2 / L2(3)),
        "recall@2": 1 / 4,
        "recall@5": 3 / 4,
        "precision@2": 1 / 2,
        "precision@10": 3 / 10,  # divides by k even when fewer are ranked
        "map@5": (1 / 2 + 2 / 4 + 3 / 5) / 4,
        "map@3": (1 / 2) / 4,
        "mrr@1": 0.0,
        "mrr@5": 1 / 2,
        "hit_rate@1": 0.0,
        "hit_rate@2": 1.0,
        "f1@2": 2 * (1 / 2) * (1 / 4) / (1 / 2 + 1 / 4),
        "r_precision": 2 / 4,  # precision at R = 4
        "ndcg": dcg5 / idcg5,
    }
    result = evaluate_ranking(qrels, run, list(cases))
    for metric, expected in cases.items():
        assert result.means[metric] == pytest.approx(expected, abs=1e-15), metric


def test_exponential_gain(one_query) -> None:
    qrels, run = one_query
    g = lambda r: 2**r - 1  # noqa: E731
    dcg = sum(g(r) / L2(i + 2) for i, r in enumerate([0, 1, 0, 3, 2]))
    idcg = g(3) / L2(2) + g(2) / L2(3) + g(1) / L2(4) + g(1) / L2(5)
    assert _one(qrels, run, "ndcg@5", gain="exponential") == pytest.approx(dcg / idcg, abs=1e-15)


def test_relevance_threshold(one_query) -> None:
    qrels, run = one_query
    # with threshold 2 only a (3) and d (2) are relevant: ranks 4 and 5
    assert _one(qrels, run, "recall@4", relevance_threshold=2) == pytest.approx(1 / 2)
    assert _one(qrels, run, "mrr@5", relevance_threshold=2) == pytest.approx(1 / 4)


def test_ties_stable_and_trec_eval_orders() -> None:
    qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [10, 9], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": [10, 9], "score": [1.0, 1.0]})
    # stable: item id ascending -> 9 first; trec_eval: id string descending -> "9" > "10" -> 9 first
    assert _one(qrels, run, "mrr@2", ties="stable") == 0.5
    assert _one(qrels, run, "mrr@2", ties="trec_eval") == 0.5
    run2 = run.assign(item_id=[10, 11])
    qrels2 = qrels.assign(item_id=[10, 11])
    assert _one(qrels2, run2, "mrr@2", ties="stable") == 1.0  # 10 < 11
    assert _one(qrels2, run2, "mrr@2", ties="trec_eval") == 0.5  # "11" > "10"


def test_average_ties_hand_case() -> None:
    # three tied items, one relevant: expected RR = (1 + 1/2 + 1/3) / 3, hit@1 = 1/3
    qrels = pd.DataFrame({"query_id": 1, "item_id": [1, 2, 3], "relevance": [1, 0, 0]})
    run = qrels.drop(columns="relevance").assign(score=0.5)
    res = evaluate_ranking(qrels, run, ["mrr@3", "hit_rate@1", "hit_rate@2", "precision@1", "map@3"],
                           ties="average").means
    assert res["mrr@3"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    assert res["hit_rate@1"] == pytest.approx(1 / 3)
    assert res["hit_rate@2"] == pytest.approx(2 / 3)
    assert res["precision@1"] == pytest.approx(1 / 3)
    assert res["map@3"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_query_bookkeeping() -> None:
    qrels = pd.DataFrame({"query_id": [1, 1, 2, 3], "item_id": [1, 2, 1, 1], "relevance": [1, 0, 0, 2]})
    run = pd.DataFrame({"query_id": [1, 2, 9, 9], "item_id": [1, 1, 1, 2], "score": [1.0, 1.0, 1.0, 0.5]})
    res = evaluate_ranking(qrels, run, ["ndcg@5"])
    # q1 evaluated (perfect), q2 has nothing relevant (skipped), q3 relevant but unranked (0),
    # q9 is not in qrels (ignored)
    assert res.n_queries == 2
    assert res.skipped == {"no_relevant": 1, "not_in_qrels": 1}
    assert res.n_missing_from_run == 1
    assert res.per_query["ndcg@5"].to_dict() == {1: 1.0, 3: 0.0}
    assert res.means["ndcg@5"] == 0.5


def test_ranking_input_equals_dataframe_input() -> None:
    rng = np.random.default_rng(3)
    n_q, n_items, k = 50, 30, 8
    scores = rng.normal(size=(n_q, n_items))
    ranking = Ranking.from_scores(np.arange(n_q), np.arange(n_items), scores, k)
    qrels = pd.DataFrame({"query_id": np.repeat(np.arange(n_q), 5),
                          "item_id": rng.integers(0, n_items, n_q * 5)}).drop_duplicates()
    qrels["relevance"] = rng.integers(0, 3, len(qrels))
    metrics = ["ndcg@[3,8]", "map@8", "mrr@8", "recall@5"]
    a = evaluate_ranking(qrels, ranking, metrics).per_query
    b = evaluate_ranking(qrels, ranking.to_frame().drop(columns="rank"), metrics).per_query
    pd.testing.assert_frame_equal(a, b)


def test_metric_curves_equal_pointwise_evaluation(one_query) -> None:
    qrels, run = one_query
    curves = metric_curves(qrels, run, ["ndcg", "recall", "map"], 6)
    assert list(curves.index) == [1, 2, 3, 4, 5, 6]
    for k in range(1, 7):
        res = evaluate_ranking(qrels, run, [f"ndcg@{k}", f"recall@{k}", f"map@{k}"]).means
        assert curves.loc[k, "ndcg"] == pytest.approx(res[f"ndcg@{k}"], abs=1e-15)
        assert curves.loc[k, "recall"] == pytest.approx(res[f"recall@{k}"], abs=1e-15)
        assert curves.loc[k, "map"] == pytest.approx(res[f"map@{k}"], abs=1e-15)


def _frames():
    qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [1, 2], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": [1, 2], "score": [0.5, 0.4]})
    return qrels, run


@pytest.mark.parametrize("mutate, match", [
    (lambda q, r: (q.drop(columns="relevance"), r), r"qrels: missing column\(s\) \['relevance'\]"),
    (lambda q, r: (q.iloc[:0], r), "qrels: is empty"),
    (lambda q, r: (q.assign(relevance=[-1, 0]), r), "integers >= 0; 1 rows do not"),
    (lambda q, r: (q.assign(relevance=[0.5, 0]), r), "integers >= 0"),
    (lambda q, r: (q.assign(relevance=["a", "b"]), r), "must be numeric"),
    (lambda q, r: (pd.concat([q, q]), r), "qrels: duplicate .* in 1 queries"),
    (lambda q, r: (q, r.assign(score=[np.nan, 1.0])), "1 NaN or infinite"),
    (lambda q, r: (q, r.assign(score=[np.inf, 1.0])), "1 NaN or infinite"),
    (lambda q, r: (q, r.assign(item_id=[1, 1])), "run: duplicate .* in 1 queries"),
    (lambda q, r: (q, r.assign(query_id=[None, 1])), "'query_id' has 1 missing ids"),
    (lambda q, r: (q, r.assign(query_id=["1", "1"])), "none of its 1 query ids appears in qrels"),
    (lambda q, r: (q, r.iloc[:0]), "run: is empty"),
    (lambda q, r: (q, [1, 2]), "run: expected a DataFrame"),
])
def test_bad_inputs(mutate, match) -> None:
    qrels, run = mutate(*_frames())
    with pytest.raises(DataValidationError, match=match):
        evaluate_ranking(qrels, run, ["ndcg@2"])


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": ["ndcg@0"]}, "cut-offs must be >= 1"),
    ({"metrics": ["precision"]}, "needs a cut-off"),
    ({"metrics": ["r_precision@5"]}, "takes no cut-off"),
    ({"metrics": ["bleu@4"]}, "unknown metric 'bleu'"),
    ({"metrics": ["ndcg@10"], "gain": "cubic"}, "gain: unknown value"),
    ({"metrics": ["ndcg@10"], "ties": "random"}, "ties: unknown value"),
    ({"metrics": ["ndcg@10"], "relevance_threshold": 0}, r"relevance_threshold: must be in \(0, inf\], got 0"),
])
def test_bad_options(kwargs, match) -> None:
    qrels, run = _frames()
    metrics = kwargs.pop("metrics")
    with pytest.raises(ConfigError, match=match):
        evaluate_ranking(qrels, run, metrics, **kwargs)


def test_mixed_id_types_are_refused() -> None:
    qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [1, "b"], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": [1, "b"], "score": [0.5, 0.4]})
    with pytest.raises(DataValidationError, match="all ints or all strings"):
        evaluate_ranking(qrels, run, ["ndcg@2"])
    # each table sound, the two unlike (integer judgments, text scores): each side's type named
    qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [10, 11], "relevance": [1, 0]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": ["10", "11"], "score": [0.5, 0.4]})
    with pytest.raises(DataValidationError, match=r"the qrels hold integer ids \(e.g. 10, 11\) and the run string "
                                                  r"ids \(e.g. '10', '11'\); check the id types"):
        evaluate_ranking(qrels, run, ["ndcg@2"])


def test_metric_list_expansion() -> None:
    qrels, run = _frames()
    res = evaluate_ranking(qrels, run, ["ndcg@[1,2]", "recall@[2, 1]", "ndcg@1"])
    assert list(res.per_query.columns) == ["ndcg@1", "ndcg@2", "recall@2", "recall@1"]


def test_grouped_and_scattered_rows_give_the_same_values() -> None:
    """Rows grouped by query take the no-copy path; scattered rows the counting sort."""
    rng = np.random.default_rng(8)
    q = np.repeat(np.arange(200), 12)
    qrels = pd.DataFrame({"query_id": q, "item_id": np.tile(np.arange(12), 200), "relevance": rng.integers(0, 3, q.size)})
    run = pd.DataFrame({"query_id": q, "item_id": np.tile(np.arange(12), 200), "score": rng.integers(0, 4, q.size) * 1.0})
    metrics = ["ndcg@5", "map@10", "mrr", "hit_rate@3"]
    for ties in ("stable", "average"):
        grouped = evaluate_ranking(qrels, run, metrics, ties=ties).per_query.sort_index()
        scattered = evaluate_ranking(qrels.sample(frac=1.0, random_state=1), run.sample(frac=1.0, random_state=2),
                                     metrics, ties=ties).per_query.sort_index()
        pd.testing.assert_frame_equal(grouped, scattered)


def test_curves_in_the_same_pass_equal_metric_curves(one_query) -> None:
    qrels, run = one_query
    res = evaluate_ranking(qrels, run, ["ndcg@3"], curves=["ndcg", "recall"], max_k=6)
    pd.testing.assert_frame_equal(res.curves, metric_curves(qrels, run, ["ndcg", "recall"], 6))
    assert list(res.per_query.columns) == ["ndcg@3"]
    with pytest.raises(ConfigError, match="max_k: must be an integer >= 1"):
        evaluate_ranking(qrels, run, ["ndcg@3"], curves=["ndcg"])


def test_no_relevant_queries_are_skipped_or_scored_zero_by_hand():
    qrels = pd.DataFrame({"query_id": [1, 1, 2], "item_id": [10, 11, 12], "relevance": [1, 0, 0]})
    run = pd.DataFrame({"query_id": [1, 1, 2], "item_id": [11, 10, 12], "score": [0.9, 0.5, 1.0]})
    skip = evaluate_ranking(qrels, run, ["mrr@2", "ndcg@2"])
    assert list(skip.per_query.index) == [1] and skip.skipped["no_relevant"] == 1
    assert skip.means["mrr@2"] == 0.5
    zero = evaluate_ranking(qrels, run, ["mrr@2", "ndcg@2"], no_relevant="zero")
    assert list(zero.per_query.index) == [1, 2] and zero.skipped["no_relevant"] == 0
    assert zero.per_query.loc[2].tolist() == [0.0, 0.0]
    assert zero.means["mrr@2"] == 0.25  # (1/2 + 0) / 2
    with pytest.raises(ConfigError, match="no_relevant"):
        evaluate_ranking(qrels, run, ["mrr@2"], no_relevant="drop")


def test_trec_eval_ties_break_by_the_users_ids_not_the_codes():
    """Codes 0 and 1 tie; trec_eval orders tied documents by id string, descending."""
    qrels = pd.DataFrame({"query_id": [1], "item_id": [0], "relevance": [1]})
    run = pd.DataFrame({"query_id": [1, 1], "item_id": [0, 1], "score": [1.0, 1.0]})
    assert evaluate_ranking(qrels, run, ["mrr@2"], ties="trec_eval").means["mrr@2"] == 0.5  # "1" > "0"
    named = evaluate_ranking(qrels, run, ["mrr@2"], ties="trec_eval", item_names=np.array(["doc-b", "doc-a"]))
    assert named.means["mrr@2"] == 1.0  # code 0 is "doc-b" > "doc-a": ranked first
