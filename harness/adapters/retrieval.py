"""Asking a model for rankings of the data set's queries: batches, padding, candidates.

Every output is checked where it enters (``harness.types.call_retriever``); here the
batches are assembled, restricted to a candidate set when the data set has one, and
checked against the data set's item space.
"""

from __future__ import annotations

import sys

import numpy as np
from tqdm.auto import tqdm

from harness.errors import AdapterError
from harness.types import Dataset, Ranking, Retriever, call_retriever

QUERY_BATCH = 4096


def retrieve_all(name: str, model: Retriever, query_ids: np.ndarray, k: int, *, progress: bool) -> Ranking:
    """Top-``k`` of every query, asked in batches of ``QUERY_BATCH``, padded to ``k``."""
    if not hasattr(model, "retrieve"):
        raise AdapterError(f"model {name!r} ({type(model).__name__}) has no retrieve(); "
                           "ranking metrics need a Retriever")
    parts = []
    batches = range(0, len(query_ids), QUERY_BATCH)
    for start in tqdm(batches, desc=f"retrieve {name}", unit="batch", disable=not progress,
                      file=sys.stderr, leave=False):
        q = query_ids[start : start + QUERY_BATCH]
        try:
            parts.append(call_retriever(model, name, q, k).padded(k))
        except AdapterError as exc:
            raise AdapterError(f"{exc} (queries {start}..{start + len(q) - 1})") from exc
    if not parts:
        return Ranking(query_ids, np.empty((0, k), dtype=np.int64), np.empty((0, k)))
    return Ranking.trusted(query_ids, np.concatenate([p.items for p in parts]),
                           np.concatenate([p.scores for p in parts]))


def restrict_to_candidates(ranking: Ranking, dataset: Dataset, k: int) -> Ranking:
    """Keep each query's candidate items (in the model's order), then the first ``k``."""
    from harness.datasets.candidates import restrict_to_candidates as restrict

    items, scores = restrict(ranking.query_ids, ranking.items, ranking.scores, dataset.candidates,
                             n_items=dataset.n_items)
    return Ranking(ranking.query_ids, items[:, :k], scores[:, :k])


def check_known_items(name: str, ranking: Ranking, n_items: int, *, stage: str | None = None) -> None:
    """Refuse item codes outside the data set's item space."""
    unknown = ranking.items >= n_items
    if unknown.any():
        where = f"model {name!r}" + (f", stage {stage!r}" if stage else "")
        raise AdapterError(f"{where} returned {int(unknown.sum())} item ids the dataset does not know "
                           f"(n_items={n_items}; e.g. {int(ranking.items[unknown][0])})")
