"""Shared machinery for rankers that re-score a candidate list.

A ranker gets a padded ``Ranking`` of candidates, scores every real (query, item)
pair in row batches, and re-orders each row by (score desc, item id asc). These
helpers do the pair extraction, the batching with error reporting and the re-sort,
so that every ranker adapter handles padding, NaN and failures the same way.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from harness.types import PAD_ITEM, PAD_SCORE, Ranking, adapter_call
from harness.errors import AdapterError, describe_examples

# pairs scored per call of a wrapped model
DEFAULT_PAIR_BATCH = 200_000


def candidate_pairs(candidates: Ranking) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Row/column positions of the real candidates and their ``(query_id, item_id)`` frame."""
    rows, cols = np.nonzero(candidates.items != PAD_ITEM)
    pairs = pd.DataFrame({"query_id": np.asarray(candidates.query_ids)[rows],
                          "item_id": candidates.items[rows, cols].astype(np.int64)})
    return rows, cols, pairs


def score_in_batches(score: Callable[[pd.DataFrame], np.ndarray], pairs: pd.DataFrame, *,
                     source: str, batch_size: int = DEFAULT_PAIR_BATCH) -> np.ndarray:
    """Call ``score`` on consecutive row batches of ``pairs``; check and join the outputs.

    A failure of ``score`` becomes an ``AdapterError`` naming ``source`` and the batch
    (``harness.types.adapter_call``); a bad output, one naming the batch and the problem.
    """
    out = np.empty(len(pairs), dtype=np.float64)
    for b, start in enumerate(range(0, len(pairs), batch_size)):
        chunk = pairs.iloc[start : start + batch_size]
        rows = f"batch {b} (pair rows {start}..{start + len(chunk) - 1})"
        where = f"{source}, {rows}"
        with adapter_call(source, "score", where=f"at {rows}"):
            raw = score(chunk)
        values = np.asarray(raw)
        if values.ndim == 2 and values.shape[1] == 1:
            values = values[:, 0]
        if values.shape != (len(chunk),):
            raise AdapterError(f"{where}: expected {len(chunk)} scores, got shape {values.shape}")
        if not np.issubdtype(values.dtype, np.number):
            raise AdapterError(f"{where}: scores must be numeric, got dtype {values.dtype}")
        values = values.astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            q = chunk["query_id"].to_numpy()[bad]
            raise AdapterError(f"{where}: {int(bad.sum())} NaN or infinite scores "
                               f"({describe_examples(q)} as query ids)")
        out[start : start + len(chunk)] = values
    return out


def rerank(candidates: Ranking, rows: np.ndarray, cols: np.ndarray, scores: np.ndarray,
           k: int) -> Ranking:
    """Re-order each candidate row by new ``scores`` (desc), ties by item id (asc); keep ``k``."""
    n, width = candidates.items.shape
    dense = np.full((n, width), PAD_SCORE)
    dense[rows, cols] = scores
    # padding (-1, -inf) sorts last because its negated score is +inf
    order = np.lexsort((candidates.items, -dense), axis=-1)[:, :k]
    items = np.take_along_axis(candidates.items, order, axis=1)
    top = np.take_along_axis(dense, order, axis=1)
    items = np.where(np.isfinite(top), items, PAD_ITEM)
    return Ranking(np.asarray(candidates.query_ids), items.astype(np.int64), top).padded(k)


def drop_to_trailing_padding(items: np.ndarray, dropped: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``items`` with its ``dropped`` entries turned into padding and moved
    last, the kept ones first in their order (a stable sort on the mask, so padding
    trails as a Ranking's must); and the permutation, to move a score matrix alike
    (``np.take_along_axis(scores, order, 1)``)."""
    order = np.argsort(dropped, axis=1, kind="stable")
    return np.where(np.take_along_axis(dropped, order, 1), PAD_ITEM, np.take_along_axis(items, order, 1)), order


def check_candidates(candidates: object, k: int, *, source: str) -> Ranking:
    """A ranker's input must be a ``Ranking`` and ``k`` a positive int."""
    if not isinstance(candidates, Ranking):
        raise AdapterError(f"{source}: candidates must be a Ranking, got {type(candidates).__name__}")
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise AdapterError(f"{source}: k must be a positive integer, got {k!r}")
    return candidates


class PairScorer:
    """Base of adapters that score (query, item) pairs: rankers, and retrievers through them.

    Subclasses implement ``_score_pairs(pairs) -> ndarray`` on a ``(query_id, item_id)``
    frame. Then ``rank(candidates, k)`` re-orders given candidates, and
    ``retrieve(query_ids, k)`` ranks the ``n_candidates`` items of the ``candidates``
    retriever, or, without one, the whole catalogue (items seen in training left out
    when ``exclude_seen``), in query batches of about ``batch_size`` pairs.
    """

    name: str = "PairScorer"
    candidates: object | None = None
    n_candidates: int | None = None
    exclude_seen: bool = True
    batch_size: int = DEFAULT_PAIR_BATCH
    n_items: int = 0
    _seen: object | None = None

    def _score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        raise NotImplementedError

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "PairScorer":
        """Fit the candidate retriever (if any) and remember the catalogue; the scorer itself
        is used as given."""
        from harness.datasets.base import seen_matrix

        self.n_items = n_items
        self._seen = seen_matrix(train, n_users, n_items) if self.exclude_seen else None
        if self.candidates is not None and hasattr(self.candidates, "fit"):
            self.candidates.fit(train, n_users=n_users, n_items=n_items)
        return self

    def rank(self, candidates: Ranking, k: int) -> Ranking:
        check_candidates(candidates, k, source=self.name)
        rows, cols, pairs = candidate_pairs(candidates)
        scores = score_in_batches(self._score_pairs, pairs, source=self.name, batch_size=self.batch_size)
        return rerank(candidates, rows, cols, scores, k)

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        from harness.types import call_retriever

        query_ids = np.asarray(query_ids, dtype=np.int64)
        if self.candidates is not None:
            pool = call_retriever(self.candidates, f"{self.name} candidates", query_ids,  # type: ignore[arg-type]
                                  max(k, self.n_candidates or k))
            return self.rank(pool, k)
        if self.n_items < 1:
            raise AdapterError(f"{self.name}: call fit() before retrieve() (the catalogue size is unknown)")
        per_batch = max(1, self.batch_size // self.n_items)
        parts = [self.rank(self._catalogue(query_ids[s : s + per_batch]), k)
                 for s in range(0, len(query_ids), per_batch)]
        return Ranking(query_ids, np.concatenate([p.items for p in parts]),
                       np.concatenate([p.scores for p in parts]))

    def _catalogue(self, q: np.ndarray) -> Ranking:
        """Every item as a candidate of every query in ``q`` (seen items as padding)."""
        items = np.broadcast_to(np.arange(self.n_items, dtype=np.int64), (len(q), self.n_items)).copy()
        if self._seen is not None:
            seen = np.zeros(items.shape, dtype=bool)
            seen[self._seen[q].nonzero()] = True  # type: ignore[index]
            items, _ = drop_to_trailing_padding(items, seen)
        scores = np.where(items == PAD_ITEM, PAD_SCORE, 0.0)
        return Ranking(q, items, scores)
