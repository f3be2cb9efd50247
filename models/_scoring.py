"""Shared machinery for retrievers that score the whole catalogue per query batch."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd
import scipy.sparse as sp

from harness.datasets.base import seen_matrix
from harness.types import Ranking

# Dense score blocks are kept under this many float64 cells (64 MiB).
DEFAULT_BLOCK_CELLS = 8_000_000


class CatalogueScorer(ABC):
    """Retriever that scores every item for each query, in memory-bounded batches.

    Subclasses implement ``fit`` and ``score(query_ids) -> (n_queries, n_items)``.
    Items the user saw in training are excluded when ``exclude_seen`` is true.
    """

    exclude_seen: bool = True
    block_cells: int = DEFAULT_BLOCK_CELLS
    _seen: sp.csr_matrix | None = None
    n_items: int = 0

    def _remember_seen(self, train: pd.DataFrame, n_users: int, n_items: int) -> None:
        self.n_items = n_items
        self._seen = seen_matrix(train, n_users, n_items) if self.exclude_seen else None

    @abstractmethod
    def score(self, query_ids: np.ndarray) -> np.ndarray:
        """Scores of every item for each query, shape (len(query_ids), n_items)."""

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        query_ids = np.asarray(query_ids, dtype=np.int64)
        batch = max(1, self.block_cells // max(self.n_items, 1))
        items_out, scores_out = [], []
        item_ids = np.arange(self.n_items, dtype=np.int64)
        for start in range(0, len(query_ids), batch):
            q = query_ids[start : start + batch]
            s = np.asarray(self.score(q), dtype=np.float64)
            if self._seen is not None:
                rows, cols = self._seen[q].nonzero()
                s[rows, cols] = -np.inf
            top = Ranking.from_scores(q, item_ids, s, k)
            items_out.append(top.items)
            scores_out.append(top.scores)
        return Ranking(query_ids, np.concatenate(items_out), np.concatenate(scores_out))
