"""Ranking metrics with trec_eval semantics: the friendly front door.

``evaluate_ranking`` validates qrels and a run once, joins them once into padded
per-query arrays, and hands those to the kernels in ``_ranking_kernels``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from . import _ranking_kernels as K
from ._names import MetricSpec, parse_metric_names

Gain = Literal["linear", "exponential"]
Ties = Literal["stable", "trec_eval"]

# metric name -> needs a cut-off
RANKING_METRICS: dict[str, bool] = {
    "ndcg": True,
    "dcg": True,
    "recall": True,
    "precision": True,
    "map": True,
    "mrr": True,
    "hit_rate": True,
    "f1": True,
}


@dataclass
class RankingResult:
    """Per-query values and means of ranking metrics.

    Attributes
    ----------
    per_query : DataFrame
        Index ``query_id`` (queries with at least one relevant item), one column per metric.
    means : dict
        Metric label -> mean over ``per_query``.
    n_queries : int
        Queries evaluated (rows of ``per_query``).
    skipped : dict
        Reason -> count: ``no_relevant`` (in qrels but nothing relevant; left out of the
        means), ``not_in_qrels`` (in the run only; ignored).
    n_missing_from_run : int
        Evaluated queries that the run did not rank at all (they score 0).
    """

    per_query: pd.DataFrame
    means: dict[str, float]
    n_queries: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_missing_from_run: int = 0


@dataclass
class JoinedRanking:
    """A run joined with its qrels: padded arrays shared by every metric kernel."""

    query_ids: np.ndarray  # (n,) original ids of the qrels queries
    rel: np.ndarray  # (n, K) relevance at each rank, 0 for unjudged/padding
    ideal_rel: np.ndarray  # (n, K) judged relevances sorted descending
    n_relevant: np.ndarray  # (n,)
    in_run: np.ndarray  # (n,) bool
    n_run_only: int


def _check_frame(df: pd.DataFrame, name: str, value_col: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{name}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in ("query_id", "item_id", value_col) if c not in df.columns]
    if missing:
        raise DataValidationError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise DataValidationError(f"{name}: is empty (0 rows)")
    for col in ("query_id", "item_id"):
        nulls = df[col].isna()
        if nulls.any():
            raise DataValidationError(f"{name}: column {col!r} has {int(nulls.sum())} missing ids")


def _validate_qrels(qrels: pd.DataFrame) -> np.ndarray:
    _check_frame(qrels, "qrels", "relevance")
    rel = qrels["relevance"].to_numpy()
    if not np.issubdtype(rel.dtype, np.number) or np.issubdtype(rel.dtype, np.complexfloating):
        raise DataValidationError(f"qrels: column 'relevance' must be numeric, got dtype {rel.dtype}")
    rel = rel.astype(np.float64)
    bad = ~np.isfinite(rel) | (rel < 0) | (rel != np.round(rel))
    if bad.any():
        raise DataValidationError(
            f"qrels: column 'relevance' must hold integers >= 0; {int(bad.sum())} rows do not "
            f"({describe_examples(rel[bad])})")
    return rel


def _validate_run_scores(run: pd.DataFrame) -> np.ndarray:
    _check_frame(run, "run", "score")
    scores = run["score"].to_numpy()
    if not np.issubdtype(scores.dtype, np.number):
        raise DataValidationError(f"run: column 'score' must be numeric, got dtype {scores.dtype}")
    scores = scores.astype(np.float64)
    bad = ~np.isfinite(scores)
    if bad.any():
        raise DataValidationError(f"run: column 'score' has {int(bad.sum())} NaN or infinite values "
                                  f"({describe_examples(run['query_id'].to_numpy()[bad])} as query ids)")
    return scores


def _factorize(values: np.ndarray, *, sort: bool, what: str) -> np.ndarray:
    try:
        codes, _ = pd.factorize(values, sort=sort)
    except TypeError as exc:
        raise DataValidationError(f"{what}: ids of mixed types cannot be ordered ({exc})") from exc
    return codes.astype(np.int64, copy=False)


def _duplicate_check(keys_sorted: np.ndarray, ids: np.ndarray, order: np.ndarray, name: str) -> None:
    dup = np.nonzero(keys_sorted[1:] == keys_sorted[:-1])[0]
    if dup.size:
        raise DataValidationError(f"{name}: {dup.size} duplicate (query_id, item_id) rows "
                                  f"({describe_examples(ids[order[dup]])} as query ids)")


def join_run_qrels(
    qrels: pd.DataFrame,
    run: pd.DataFrame,
    depth: int,
    *,
    ties: Ties = "stable",
    relevance_threshold: float = 1,
) -> JoinedRanking:
    """Rank the run per query and look up each ranked item's relevance, once.

    The run is ordered by score descending; ties by item id ascending (``"stable"``) or
    by item id as a string, descending (``"trec_eval"``, trec_eval's own order).
    """
    rel_values = _validate_qrels(qrels)
    scores = _validate_run_scores(run)
    q_ids = np.concatenate([qrels["query_id"].to_numpy(), run["query_id"].to_numpy()])
    i_ids = np.concatenate([qrels["item_id"].to_numpy(), run["item_id"].to_numpy()])
    n_q = len(qrels)
    # qrels ids come first, so qrels queries get codes 0..nq-1 and run-only queries >= nq
    q_codes = _factorize(q_ids, sort=False, what="query_id")
    n_eval = int(q_codes[:n_q].max()) + 1
    if ties == "trec_eval":
        i_codes = _factorize(i_ids.astype(str), sort=True, what="item_id")
        tiebreak = -i_codes[n_q:]
    elif ties == "stable":
        i_codes = _factorize(i_ids, sort=True, what="item_id")
        tiebreak = i_codes[n_q:]
    else:
        raise ConfigError(f"ties: unknown value {ties!r}; use 'stable' or 'trec_eval'")
    n_items = int(i_codes.max()) + 1
    qq, qi = q_codes[:n_q], i_codes[:n_q]
    rq, ri = q_codes[n_q:], i_codes[n_q:]

    # qrels: sort by key (query, item) for lookups and duplicate detection
    q_keys = qq * n_items + qi
    q_order = np.argsort(q_keys, kind="stable")
    q_keys_sorted = q_keys[q_order]
    _duplicate_check(q_keys_sorted, qrels["query_id"].to_numpy(), q_order, "qrels")
    r_keys = rq * n_items + ri
    r_order = np.argsort(r_keys, kind="stable")
    _duplicate_check(r_keys[r_order], run["query_id"].to_numpy(), r_order, "run")

    # run: order rows by (query, score desc, tie-break), rank within query, keep top depth
    order = np.lexsort((tiebreak, -scores, rq))
    rq_sorted = rq[order]
    starts = np.r_[0, np.nonzero(np.diff(rq_sorted))[0] + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(rq_sorted)]))
    rank = np.arange(len(rq_sorted)) - group_start
    keep = (rank < depth) & (rq_sorted < n_eval)
    rows = order[keep]
    pos = np.searchsorted(q_keys_sorted, r_keys[rows])
    pos_clipped = np.minimum(pos, len(q_keys_sorted) - 1)
    found = q_keys_sorted[pos_clipped] == r_keys[rows]
    rel_run = np.where(found, rel_values[q_order[pos_clipped]], 0.0)

    rel = np.zeros((n_eval, depth), dtype=np.float64)
    rel[rq_sorted[keep], rank[keep]] = rel_run

    # ideal: judged relevances per query, descending
    i_order = np.lexsort((-rel_values, qq))
    qq_sorted = qq[i_order]
    i_starts = np.r_[0, np.nonzero(np.diff(qq_sorted))[0] + 1]
    i_rank = np.arange(len(qq_sorted)) - np.repeat(i_starts, np.diff(np.r_[i_starts, len(qq_sorted)]))
    i_keep = i_rank < depth
    ideal = np.zeros((n_eval, depth), dtype=np.float64)
    ideal[qq_sorted[i_keep], i_rank[i_keep]] = rel_values[i_order][i_keep]

    in_run = np.zeros(n_eval, dtype=bool)
    in_run[rq[rq < n_eval]] = True
    n_run_only = int(np.unique(rq[rq >= n_eval]).size)
    query_ids = np.asarray(pd.unique(q_ids[:n_q]))
    n_relevant = np.bincount(qq, weights=rel_values >= relevance_threshold, minlength=n_eval)
    return JoinedRanking(query_ids, rel, ideal, n_relevant, in_run, n_run_only)


def _curves(
    joined: JoinedRanking, names: set[str], *, gain: Gain, threshold: float
) -> dict[str, np.ndarray]:
    """Metric@k curves (n, K) for the requested metric names, sharing intermediate arrays."""
    binary = (joined.rel >= threshold).astype(np.float64)
    n_rel = joined.n_relevant
    K_ = joined.rel.shape[1]
    ks = np.arange(1, K_ + 1, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    if names & {"ndcg", "dcg"}:
        gains = K.gain_values(joined.rel, gain)
        if "dcg" in names:
            out["dcg"] = K.dcg_curve(gains)
        if "ndcg" in names:
            out["ndcg"] = K.ndcg_curve(gains, K.gain_values(joined.ideal_rel, gain))
    if names & {"recall", "precision", "hit_rate", "f1"}:
        hits = K.hits_curve(binary)
        recall = K.safe_divide(hits, n_rel)
        precision = hits / ks
        out["recall"] = recall
        out["precision"] = precision
        out["hit_rate"] = (hits > 0).astype(np.float64)
        out["f1"] = K.safe_divide(2 * precision * recall, precision + recall)
    if "map" in names:
        out["map"] = K.average_precision_curve(binary, n_rel)
    if "mrr" in names:
        out["mrr"] = K.reciprocal_rank_curve(binary)
    return out


def evaluate_ranking(
    qrels: pd.DataFrame,
    run: pd.DataFrame,
    metrics: str | list[str],
    *,
    gain: Gain = "linear",
    ties: Ties = "stable",
    relevance_threshold: int = 1,
) -> RankingResult:
    """Evaluate a run against graded judgments.

    Parameters
    ----------
    qrels : DataFrame
        Columns ``query_id``, ``item_id``, ``relevance`` (integers >= 0).
    run : DataFrame or Ranking
        Columns ``query_id``, ``item_id``, ``score``; or a ``Ranking`` from an adapter.
    metrics : str or list of str
        E.g. ``["ndcg@10", "recall@[10,20]", "map@100", "mrr@10"]``.
    gain : {"linear", "exponential"}, default "linear"
        Gain of a relevance grade: ``rel`` (trec_eval, scikit-learn) or ``2**rel - 1``.
    ties : {"stable", "trec_eval"}, default "stable"
        Order of equal scores: item id ascending, or trec_eval's (id string descending).
    relevance_threshold : int, default 1
        Grade at or above which an item counts as relevant for binary metrics.

    Returns
    -------
    RankingResult

    Notes
    -----
    With ``rel_i`` the grade at rank i, ``b_i = [rel_i >= threshold]`` and ``R`` the
    number of relevant judged items of the query:

    - DCG@k = sum_{i<=k} g(rel_i) / log2(i + 1); nDCG@k = DCG@k / IDCG@k, the ideal
      taken over all judged items of the query;
    - Recall@k = sum_{i<=k} b_i / R; Precision@k = sum_{i<=k} b_i / k;
    - AP@k = sum_{i<=k} b_i * Precision@i / R; MRR@k = 1 / min{i <= k : b_i}, else 0;
    - HitRate@k = [sum_{i<=k} b_i > 0]; F1@k = 2 P R / (P + R).

    Queries without a relevant item are left out and counted in ``skipped``.

    Examples
    --------
    >>> qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [10, 11], "relevance": [1, 0]})
    >>> run = pd.DataFrame({"query_id": [1, 1], "item_id": [11, 10], "score": [0.9, 0.5]})
    >>> evaluate_ranking(qrels, run, ["recall@1", "mrr@2"]).means
    {'recall@1': 0.0, 'mrr@2': 0.5}
    """
    specs = parse_metric_names(metrics, known=RANKING_METRICS)
    if gain not in ("linear", "exponential"):
        raise ConfigError(f"gain: unknown value {gain!r}; use 'linear' or 'exponential'")
    from harness.adapters import Ranking  # light module; no cycle at import time

    if isinstance(run, Ranking):
        run = run.to_frame()
    depth = max(int(s.k) for s in specs if s.k is not None)
    joined = join_run_qrels(qrels, run, depth, ties=ties, relevance_threshold=relevance_threshold)
    return summarize(joined, specs, gain=gain, threshold=relevance_threshold)


def summarize(
    joined: JoinedRanking, specs: list[MetricSpec], *, gain: Gain, threshold: float
) -> RankingResult:
    """Cut metric curves at the requested k and build the per-query table and means."""
    curves = _curves(joined, {s.name for s in specs}, gain=gain, threshold=threshold)
    evaluated = joined.n_relevant > 0
    columns = {s.label: curves[s.name][evaluated, int(s.k) - 1] for s in specs}
    per_query = pd.DataFrame(columns, index=pd.Index(joined.query_ids[evaluated], name="query_id"))
    means = {label: float(v.mean()) if v.size else float("nan") for label, v in columns.items()}
    return RankingResult(
        per_query=per_query,
        means=means,
        n_queries=int(evaluated.sum()),
        skipped={"no_relevant": int((~evaluated).sum()), "not_in_qrels": joined.n_run_only},
        n_missing_from_run=int((evaluated & ~joined.in_run).sum()),
    )
