"""Item-based k-nearest-neighbours with cosine similarity.

Sarwar et al. (2001), "Item-based collaborative filtering recommendation algorithms", WWW;
Deshpande & Karypis (2004), "Item-based top-N recommendation algorithms", TOIS.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from harness.errors import ConfigError

from ._scoring import CatalogueScorer
from .features import cosine_item_similarity, interaction_matrix


def keep_top_neighbours(S: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the ``n`` largest entries of each row of ``S`` (ties: lower column first)."""
    S = sp.csr_matrix(S)
    counts = np.diff(S.indptr)
    if counts.max(initial=0) <= n:
        return S
    rows = np.repeat(np.arange(S.shape[0]), counts)
    # order entries by (row, value desc, column asc); rank within row
    order = np.lexsort((S.indices, -S.data, rows))
    rank = np.arange(len(order)) - np.repeat(S.indptr[:-1], counts)
    keep = order[rank < n]
    return sp.csr_matrix((S.data[keep], (rows[keep], S.indices[keep])), shape=S.shape)


class ItemKNN(CatalogueScorer):
    """Scores item i for user u by ``sum_{j in history(u)} S[j, i]``, S the item cosine.

    Parameters
    ----------
    n_neighbours : int or None, default None
        Keep only each item's ``n_neighbours`` most similar items (None keeps all).
    exclude_seen : bool, default True

    Notes
    -----
    ``S[j, i] = |U_j & U_i| / sqrt(|U_j| |U_i|)`` over the sets of users who interacted
    with each item; the diagonal is zero. Deterministic: no seed is needed.
    """

    def __init__(self, *, n_neighbours: int | None = None, exclude_seen: bool = True) -> None:
        if n_neighbours is not None and n_neighbours < 1:
            raise ConfigError(f"item_knn: n_neighbours must be >= 1 or None, got {n_neighbours}")
        self.n_neighbours = n_neighbours
        self.exclude_seen = exclude_seen
        self.X: sp.csr_matrix | None = None

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "ItemKNN":
        self._remember_seen(train, n_users, n_items)
        self.X = interaction_matrix(train, n_users, n_items)
        S = cosine_item_similarity(self.X)
        if self.n_neighbours is not None:
            S = keep_top_neighbours(S, self.n_neighbours)
        # neighbours of j are row j; score(u, .) = X[u] @ S
        self.S = S
        return self

    def score(self, query_ids: np.ndarray) -> np.ndarray:
        if self.X is None:
            raise ConfigError("ItemKNN: call fit() before retrieve()")
        return np.asarray((self.X[query_ids] @ self.S).todense())
