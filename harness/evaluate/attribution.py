"""Every hybrid of two pipelines on the same queries, each stage output computed once.

A hybrid takes each differing stage from the baseline or the candidate pipeline (its
coalition mask: bit ``p`` set = differing stage ``p`` from the candidate; stages the two
pipelines share are always the same model). The output of stage ``i`` depends only on
the choices for stages ``0..i``, so it is cached under ``(i, mask & prefix_i)``: a
retriever's candidates are computed once per side and shared by every hybrid that uses
them, and a ranker's output once per (retriever, ranker) choice. With ``s`` differing
stages among ``n`` this runs at most ``sum_i 2^{players <= i}`` stage calls instead of
``n 2^s``.

Queries are processed in batches, so memory holds one batch's stage outputs. Per query
the configured ranking metrics of every hybrid are kept (``metrics.evaluate_ranking``:
a hybrid that ranks nothing for a judged query scores 0 there; queries without a
relevant item are left out, as in the ranking family), and, for the ceiling analysis,
the metrics of an oracle ranker over each pipeline's first-stage candidates (their
ideal order by true relevance, cut to the pipeline's final k) and of the ideal list
(the query's judged items by relevance, cut the same).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.adapters.pipeline import Pipeline, Stage, run_stage
from harness.errors import AdapterError, ConfigError, DataValidationError
from harness.metrics import evaluate_ranking
from harness.types import PAD_ITEM, PAD_SCORE, Ranking

SIDES = ("baseline", "candidate")
# ceiling columns per metric: the ideal list and the oracle over each side's candidates
CEILING_COLUMNS = ("ideal_baseline", "oracle_baseline", "ideal_candidate", "oracle_candidate")


def differing_stages(baseline: Pipeline, candidate: Pipeline) -> list[str]:
    """Stages whose model (by identity) or k differ: the players of the attribution."""
    if baseline.names != candidate.names:
        raise ConfigError(f"attribution: the pipelines have stages {baseline.names} and {candidate.names}; "
                          "they need the same stage names in the same order")
    return [s.name for s, t in zip(baseline.stages, candidate.stages) if s.model is not t.model or s.k != t.k]


def hybrid(baseline: Pipeline, candidate: Pipeline, players: list[str], mask: int) -> Pipeline:
    """The pipeline of coalition ``mask``; a hybrid whose k's do not nest is a ``ConfigError``."""
    chosen = {p for bit, p in enumerate(players) if mask >> bit & 1}
    stages = [t if s.name in chosen else s for s, t in zip(baseline.stages, candidate.stages)]
    return Pipeline(stages, name=hybrid_name(baseline.names, chosen))


def hybrid_name(names: list[str], chosen: set[str]) -> str:
    """``hybrid(retrieval=candidate, ranking=baseline)``."""
    return "hybrid(" + ", ".join(f"{n}={'candidate' if n in chosen else 'baseline'}" for n in names) + ")"


@dataclass
class CacheStats:
    """Stage calls made and saved. ``naive_*`` is what evaluating each hybrid from scratch
    would cost: every stage of every hybrid, each at the time its cached output took."""

    stage_calls: int = 0
    naive_stage_calls: int = 0
    stage_seconds: float = 0.0
    naive_stage_seconds: float = 0.0
    metric_seconds: float = 0.0

    @property
    def share_saved(self) -> float:
        """1 - stage_seconds / naive_stage_seconds: the share of stage time reuse saved."""
        return 1.0 - self.stage_seconds / self.naive_stage_seconds if self.naive_stage_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, float]:
        return {"stage_calls": self.stage_calls, "naive_stage_calls": self.naive_stage_calls,
                "stage_seconds": self.stage_seconds, "naive_stage_seconds": self.naive_stage_seconds,
                "metric_seconds": self.metric_seconds, "share_saved": self.share_saved}


@dataclass
class HybridValues:
    """Per-query metrics of every hybrid.

    ``values[metric]`` is (n_queries, len(masks)), column ``r`` the hybrid ``masks[r]``;
    ``ceiling[metric]`` is (n_queries, 4) in ``CEILING_COLUMNS`` order (None without the
    ceiling); ``query_ids`` are the evaluated queries (internal codes), in order.
    """

    query_ids: np.ndarray
    masks: np.ndarray
    values: dict[str, np.ndarray]
    ceiling: dict[str, np.ndarray] | None
    cache: CacheStats = field(default_factory=CacheStats)


def _prefix_bits(names: list[str], players: list[str]) -> list[int]:
    """Bits of the players among stages 0..i, for each stage i."""
    out, acc = [], 0
    for name in names:
        if name in players:
            acc |= 1 << players.index(name)
        out.append(acc)
    return out


def _relevance(qrels: pd.DataFrame, ranking: Ranking) -> np.ndarray:
    """Relevance grade of each ranked item (0 when unjudged, -1 on padding)."""
    q = np.repeat(np.asarray(ranking.query_ids, dtype=np.int64), ranking.k)
    items = ranking.items.ravel()
    width = int(max(items.max(initial=0), qrels["item_id"].max()) + 2)
    judged = qrels["query_id"].to_numpy(np.int64) * width + qrels["item_id"].to_numpy(np.int64)
    order = np.argsort(judged, kind="stable")
    keys, grades = judged[order], qrels["relevance"].to_numpy(np.float64)[order]
    want = q * width + items
    pos = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    found = (keys[pos] == want) if len(keys) else np.zeros(len(want), dtype=bool)
    rel = np.where(found, grades[pos] if len(keys) else 0.0, 0.0)
    return np.where(items == PAD_ITEM, -1.0, rel).reshape(ranking.items.shape)


def oracle_ranking(qrels: pd.DataFrame, candidates: Ranking, k: int) -> Ranking:
    """The ideal re-ranking of ``candidates`` by true relevance (grade descending, padding
    last), cut to ``k``: the best any later stage could do with these candidates."""
    rel = _relevance(qrels, candidates)
    order = np.argsort(-rel, axis=1, kind="stable")[:, :k]
    items = np.take_along_axis(candidates.items, order, axis=1)
    scores = np.take_along_axis(rel, order, axis=1)
    pad = items == PAD_ITEM
    return Ranking.trusted(candidates.query_ids, items, np.where(pad, PAD_SCORE, scores))


def ideal_run(qrels: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each query's judged items by relevance, the first ``k``: the ideal list."""
    ranked = qrels.sort_values(["query_id", "relevance"], ascending=[True, False], kind="stable")
    rank = ranked.groupby("query_id", sort=False).cumcount().to_numpy()
    top = ranked[rank < k]
    return pd.DataFrame({"query_id": top["query_id"].to_numpy(), "item_id": top["item_id"].to_numpy(),
                         "score": top["relevance"].to_numpy(np.float64)})


def evaluate_hybrids(baseline: Pipeline, candidate: Pipeline, qrels: pd.DataFrame, query_ids: np.ndarray,
                     metrics: list[str], masks: np.ndarray, *, options: dict[str, object] | None = None,
                     batch_size: int = 4096, ceiling: bool = True, reuse: bool = True,
                     progress: bool = False) -> HybridValues:
    """Per-query ``metrics`` of the hybrids ``masks`` (bits over :func:`differing_stages`).

    Parameters
    ----------
    baseline, candidate : Pipeline
        Fitted pipelines with the same stage names; a stage they share is the same object.
    qrels : DataFrame
        ``query_id, item_id, relevance`` (internal codes, as the models see them).
    query_ids : ndarray
        The queries to run (internal codes).
    options : dict, optional
        ``gain``, ``ties``, ``relevance_threshold`` of :func:`harness.metrics.evaluate_ranking`.
    reuse : bool, default True
        Cache stage outputs; False recomputes every stage of every hybrid (for the benchmark).
    """
    from tqdm.auto import tqdm

    players = differing_stages(baseline, candidate)
    names = baseline.names
    hybrids = {int(m): hybrid(baseline, candidate, players, int(m)) for m in masks}
    prefix = _prefix_bits(names, players)
    options = dict(options or {})
    query_ids = np.asarray(query_ids)
    qrels_q = qrels["query_id"].to_numpy()
    stats = CacheStats()
    parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    ceil_parts: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    evaluated: list[np.ndarray] = []
    sides = {"baseline": baseline, "candidate": candidate}
    full = (1 << len(players)) - 1
    starts = range(0, len(query_ids), batch_size)
    for start in tqdm(starts, desc="attribution", unit="batch", disable=not progress, file=sys.stderr, leave=False):
        q = query_ids[start : start + batch_size]
        in_batch = np.isin(qrels_q, q)
        judged = qrels[in_batch]
        if not len(judged):
            continue
        cache: dict[tuple[int, int], Ranking] = {}
        seconds: dict[tuple[int, int], float] = {}
        finals: dict[int, Ranking] = {}
        for mask, pipe in hybrids.items():
            prev: Ranking | None = None
            for i, stage in enumerate(pipe.stages):
                key = (i, mask & prefix[i])
                stats.naive_stage_calls += 1
                if reuse and key in cache:
                    prev = cache[key]
                    stats.naive_stage_seconds += seconds[key]
                    continue
                began = time.perf_counter()
                prev = _batch_stage(stage, prev, q, pipe.name, start)
                took = time.perf_counter() - began
                stats.stage_calls += 1
                stats.stage_seconds += took
                stats.naive_stage_seconds += took
                cache[key], seconds[key] = prev, took
            finals[mask] = prev  # type: ignore[assignment]
        began = time.perf_counter()
        index = None
        for mask in hybrids:
            res = evaluate_ranking(judged, finals[mask], metrics, **options)  # type: ignore[arg-type]
            if index is None:
                index = res.per_query.index
            for m in metrics:
                parts[m].append(res.per_query[m].reindex(index).to_numpy(np.float64))
        if index is None or not len(index):
            continue
        evaluated.append(index.to_numpy())
        if ceiling:
            retrieved = {}
            for side, pipe in sides.items():
                first = cache.get((0, (0 if side == "baseline" else full) & prefix[0]))
                if first is None:  # reuse off: the side's candidates were not kept
                    first = _batch_stage(pipe.stages[0], None, q, pipe.name, start)
                retrieved[side] = (first, pipe.stages[-1].k)
            cols = _ceiling_columns(judged, index, metrics, options, retrieved)
            for m in metrics:
                ceil_parts[m].append(cols[m])
        stats.metric_seconds += time.perf_counter() - began
    if not evaluated:
        raise DataValidationError("attribution: no judged query has a relevant item; nothing to attribute")
    n_masks = len(hybrids)
    values = {m: _stack(parts[m], n_masks) for m in metrics}
    return HybridValues(np.concatenate(evaluated), np.asarray(list(hybrids), dtype=np.int64), values,
                        {m: np.concatenate(ceil_parts[m]) for m in metrics} if ceiling else None, stats)


def _stack(parts: list[np.ndarray], n_masks: int) -> np.ndarray:
    """Batch-major lists of per-hybrid columns -> (n_queries, n_masks)."""
    batches = [np.column_stack(parts[i : i + n_masks]) for i in range(0, len(parts), n_masks)]
    return np.concatenate(batches)


def _batch_stage(stage: Stage, prev: Ranking | None, q: np.ndarray, owner: str, start: int) -> Ranking:
    try:
        out = run_stage(stage, prev, q, owner=owner)
    except AdapterError as exc:
        raise AdapterError(f"attribution: {exc} (queries {start}..{start + len(q) - 1})") from exc
    return out.padded(stage.k)


def _ceiling_columns(judged: pd.DataFrame, index: pd.Index, metrics: list[str], options: dict[str, object],
                     retrieved: dict[str, tuple[Ranking, int]]) -> dict[str, np.ndarray]:
    """Per query and metric: ideal and oracle-over-candidates of each side (CEILING_COLUMNS)."""
    cols: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for side in SIDES:
        candidates, k = retrieved[side]
        for run in (ideal_run(judged, k), oracle_ranking(judged, candidates, k)):
            per_query = evaluate_ranking(judged, run, metrics, **options).per_query.reindex(index)
            for m in metrics:
                cols[m].append(per_query[m].to_numpy(np.float64))
    return {m: np.column_stack(cols[m]) for m in metrics}
