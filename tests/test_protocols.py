"""Adapter protocols: shape, dtype and value checks at the boundary."""

from __future__ import annotations

import numpy as np
import pytest

from harness.types import (PointwiseModel, Ranking, Retriever, call_retriever, check_probabilities)
from harness.errors import AdapterError, HarnessError


def _ranking(items, scores, qids=None) -> Ranking:
    items = np.asarray(items, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    return Ranking(np.arange(len(items)) if qids is None else np.asarray(qids), items, scores)


def test_valid_ranking_with_padding() -> None:
    r = _ranking([[3, 1, -1]], [[0.9, 0.5, -np.inf]])
    assert r.k == 3 and len(r) == 1
    frame = r.to_frame()
    assert frame["item_id"].tolist() == [3, 1]
    assert frame["rank"].tolist() == [1, 2]


@pytest.mark.parametrize("items, scores, match", [
    ([[1, 2]], [[0.5]], "shape"),
    ([[1, 2]], [[np.nan, 0.1]], "NaN"),
    ([[1, 2]], [[np.inf, 0.1]], "infinite"),
    ([[1, 2]], [[0.1, 0.5]], "non-increasing"),
    ([[1, 1]], [[0.5, 0.4]], "same item twice"),
    ([[-1, 2]], [[-np.inf, 0.4]], "padding"),
    ([[-5, 2]], [[0.5, 0.4]], "negative item ids"),
    ([[1.0, 2.0]], [[0.5, 0.4]], "integer"),
])
def test_bad_rankings_are_refused(items, scores, match) -> None:
    with pytest.raises(AdapterError, match=match):
        Ranking(np.array([0]), np.asarray(items), np.asarray(scores, dtype=np.float64))


def test_query_id_count_must_match_rows() -> None:
    with pytest.raises(AdapterError, match="2 query ids for 1 rows"):
        Ranking(np.array([0, 1]), np.array([[1, 2]]), np.array([[0.5, 0.4]]))


def test_errors_subclass_builtins() -> None:
    assert issubclass(AdapterError, HarnessError) and issubclass(AdapterError, RuntimeError)


def test_from_scores_orders_ties_by_item_id_and_pads() -> None:
    scores = np.array([[0.5, 0.9, 0.5, -np.inf], [1.0, 1.0, 1.0, 1.0]])
    r = Ranking.from_scores(np.array([7, 8]), np.arange(4), scores, k=3)
    assert r.items.tolist() == [[1, 0, 2], [0, 1, 2]]
    r5 = Ranking.from_scores(np.array([7, 8]), np.arange(4), scores, k=5)
    assert r5.items[0].tolist() == [1, 0, 2, -1, -1]
    assert np.isneginf(r5.scores[0, 3:]).all()


def test_from_scores_matches_brute_force_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 5, size=(50, 40)).astype(float)  # many ties
    r = Ranking.from_scores(np.arange(50), np.arange(40), scores, k=7)
    for row in range(50):  # plain reference: sort by (-score, item)
        expected = sorted(range(40), key=lambda i: (-scores[row, i], i))[:7]
        assert r.items[row].tolist() == expected


class _Bad:
    def __init__(self, out):
        self.out = out

    def retrieve(self, query_ids, k):
        if isinstance(self.out, Exception):
            raise self.out
        return self.out


def test_call_retriever_names_the_model_on_failure() -> None:
    assert isinstance(_Bad(None), Retriever)
    with pytest.raises(AdapterError, match="model 'm1' raised ValueError"):
        call_retriever(_Bad(ValueError("boom")), "m1", np.arange(2), 3)
    with pytest.raises(AdapterError, match="must return a Ranking"):
        call_retriever(_Bad([1, 2]), "m1", np.arange(2), 3)
    wrong_queries = _ranking([[1], [2]], [[0.1], [0.2]], qids=[5, 6])
    with pytest.raises(AdapterError, match="queries it was asked for"):
        call_retriever(_Bad(wrong_queries), "m1", np.arange(2), 3)
    too_wide = _ranking([[1, 2, 3, 4]], [[4.0, 3.0, 2.0, 1.0]])
    with pytest.raises(AdapterError, match="asked for k=3"):
        call_retriever(_Bad(too_wide), "m1", np.arange(1), 3)


def test_check_probabilities() -> None:
    class P:
        def predict_proba(self, pairs):
            return np.array([0.1])

    assert isinstance(P(), PointwiseModel)
    assert check_probabilities(np.array([0.0, 1.0]), 2, source="m").shape == (2,)
    with pytest.raises(AdapterError, match=r"expected shape \(3,\)"):
        check_probabilities(np.array([0.1, 0.2]), 3, source="m")
    with pytest.raises(AdapterError, match="1 probabilities outside"):
        check_probabilities(np.array([0.1, 1.2]), 2, source="m")


def test_padded_cuts_or_pads_to_exactly_k() -> None:
    r = _ranking([[3, 1, -1], [2, 0, 1]], [[0.9, 0.5, -np.inf], [3.0, 2.0, 1.0]], qids=[7, 8])
    assert r.padded(2).items.tolist() == [[3, 1], [2, 0]]
    wide = r.padded(5)
    assert wide.items.tolist() == [[3, 1, -1, -1, -1], [2, 0, 1, -1, -1]]
    assert wide.scores.tolist() == [[0.9, 0.5] + [-np.inf] * 3, [3.0, 2.0, 1.0, -np.inf, -np.inf]]
    assert wide.query_ids.tolist() == [7, 8]


def _candidates() -> Ranking:
    return _ranking([[3, 1, -1], [2, 0, 1]], [[2.0, 1.0, -np.inf], [3.0, 2.0, 1.0]])


@pytest.mark.parametrize("name", ["mmr", "precomputed", "pair_scorer"])
def test_models_with_fewer_items_than_k_pad_to_k(name: str) -> None:
    """Each model that can hold fewer than k items returns exactly k columns, -1 / -inf after its items."""
    import pandas as pd

    from harness.models._candidates import PairScorer
    from harness.models.precomputed import Precomputed
    from harness.models.rerank import MMR

    class ByItemId(PairScorer):  # scores each pair by minus its item id
        def _score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
            return -pairs["item_id"].to_numpy(dtype=np.float64)

    if name == "mmr":  # orthogonal vectors, lambda 1: the candidates' order, scores k, k-1, ...
        out, want = MMR(np.eye(4), lambda_=1.0)(_candidates(), 5), [[3, 1], [2, 0, 1]]
        assert out.scores[1, :3].tolist() == [5.0, 4.0, 3.0]
    elif name == "precomputed":
        stored = pd.DataFrame({"query_id": [0, 0, 1], "item_id": [1, 2, 0], "score": [1.0, 2.0, 3.0]})
        out, want = Precomputed(stored).retrieve(np.array([0, 1]), 5), [[2, 1], [0]]
    else:
        out, want = ByItemId().rank(_candidates(), 5), [[1, 3], [0, 1, 2]]
    assert out.items.tolist() == [row + [-1] * (5 - len(row)) for row in want]
    assert [np.isneginf(s).sum() for s in out.scores] == [5 - len(row) for row in want]
