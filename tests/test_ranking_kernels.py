"""The ranking kernel's execution choices change no bit of its output: the number of
threads, how queries are split into parallel chunks, and which way the ranks of a
query's graded items are found (counted, or read off a sort of the whole list)."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

from harness.metrics import _ranking_kernels as K
from harness.metrics import evaluate_ranking
from harness.metrics._names import parse_metric_names
from harness.metrics.ranking import RANKING_METRICS, prepare

METRICS = ["ndcg", "ndcg@[5,30]", "dcg@10", "recall@[10,100]", "precision@[1,20]", "map", "map@50",
           "mrr", "mrr@5", "hit_rate@[1,10]", "f1@10", "r_precision"]


def _case(seed: int, n_queries: int = 2000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lists of 0..150 items, 0..120 judgments with grades 0..4 (so that some queries
    have more graded items in their list than ``COUNT_RANKS_MAX``), scores with many
    ties, rows in no particular order (the counting-sort path)."""
    rng = np.random.default_rng(seed)
    run_len = rng.integers(0, 150, n_queries)
    n_judged = rng.integers(0, 120, n_queries)
    run = pd.DataFrame({"query_id": np.repeat(np.arange(n_queries), run_len),
                        "item_id": np.concatenate([rng.permutation(200)[:n] for n in run_len]),
                        "score": rng.integers(0, 12, run_len.sum()) / 4})
    qrels = pd.DataFrame({"query_id": np.repeat(np.arange(n_queries), n_judged),
                          "item_id": np.concatenate([rng.permutation(200)[:n] for n in n_judged]),
                          "relevance": rng.integers(0, 5, n_judged.sum())})
    return qrels.sample(frac=1.0, random_state=seed), run.sample(frac=1.0, random_state=seed + 1)


def _kernel(qrels: pd.DataFrame, run: pd.DataFrame, ties: str, *, n_chunks: int, count_max: int) -> np.ndarray:
    prep = prepare(qrels, run, ties=ties)
    specs = parse_metric_names(METRICS, known=RANKING_METRICS)
    codes = np.array([K.METRIC_CODES[s.name] for s in specs], dtype=np.int64)
    cutoffs = np.array([-1 if s.k is None else s.k for s in specs], dtype=np.int64)
    values, n_rel, duplicate, dup_judged = K.evaluate_segments(
        prep.run_order, prep.run_offsets, prep.run_items, prep.run_scores, prep.run_tiebreak, prep.q_order,
        prep.q_offsets, prep.q_items, prep.q_rels, codes, cutoffs, 1.0, K.GAIN_EXPONENTIAL,
        K.TIES_AVERAGE if ties == "average" else K.TIES_ORDERED, n_chunks, count_max)
    assert (duplicate == -1).all() and (dup_judged == -1).all()
    return values[n_rel > 0]


@pytest.mark.parametrize("ties", ["stable", "trec_eval", "average"])
def test_threads_give_the_same_bits(ties: str) -> None:
    qrels, run = _case(1)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        serial = evaluate_ranking(qrels, run, METRICS, ties=ties, gain="exponential").per_query
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # every core
        parallel = evaluate_ranking(qrels, run, METRICS, ties=ties, gain="exponential").per_query
    finally:
        numba.set_num_threads(before)
    assert len(serial) > 1500
    pd.testing.assert_index_equal(serial.index, parallel.index)
    assert np.array_equal(serial.to_numpy(), parallel.to_numpy())  # exact, not approximate


@pytest.mark.parametrize("ties", ["stable", "average"])
def test_chunking_gives_the_same_bits(ties: str) -> None:
    """One chunk, a few, or one a query: each query writes only its own slots."""
    qrels, run = _case(2, n_queries=600)
    one = _kernel(qrels, run, ties, n_chunks=1, count_max=K.COUNT_RANKS_MAX)
    for n_chunks in (7, 600):
        assert np.array_equal(one, _kernel(qrels, run, ties, n_chunks=n_chunks, count_max=K.COUNT_RANKS_MAX))


@pytest.mark.parametrize("ties", ["stable", "trec_eval"])
def test_counted_and_sorted_ranks_give_the_same_bits(ties: str) -> None:
    qrels, run = _case(3, n_queries=600)
    # the case holds queries on either side of the default threshold
    judged = qrels.set_index(["query_id", "item_id"])["relevance"]
    graded = (run.join(judged, on=["query_id", "item_id"])["relevance"] > 0).groupby(run["query_id"]).sum()
    assert (graded <= K.COUNT_RANKS_MAX).sum() > 50 and (graded > K.COUNT_RANKS_MAX).sum() > 50
    counted = _kernel(qrels, run, ties, n_chunks=8, count_max=10**9)
    assert np.array_equal(counted, _kernel(qrels, run, ties, n_chunks=8, count_max=-1))
    assert np.array_equal(counted, _kernel(qrels, run, ties, n_chunks=8, count_max=K.COUNT_RANKS_MAX))


def test_one_compiled_version_per_kernel() -> None:
    """Signatures are explicit: other dtypes are refused, never compiled anew."""
    assert len(K.evaluate_segments.signatures) == 1 and len(K.group_offsets.signatures) == 1
    with pytest.raises(TypeError, match="No matching definition"):
        K.group_offsets(np.zeros(3, dtype=np.int64), 1)
    qrels = pd.DataFrame({"query_id": np.array([1, 1], dtype=np.int8), "item_id": np.array([5, 6], dtype=np.uint16),
                          "relevance": np.array([1, 0], dtype=np.int8)})
    run = pd.DataFrame({"query_id": [1.0, 1.0], "item_id": np.array([6, 5], dtype=np.int32),
                        "score": np.array([0.5, 0.2], dtype=np.float32)})
    assert evaluate_ranking(qrels, run, ["mrr"]).means == {"mrr": 0.5}  # cast at the front door
    assert len(K.evaluate_segments.signatures) == 1
