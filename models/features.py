"""Features of (query, item) pairs: user, item and cross features joined, vectorised.

``FeatureBuilder`` joins per-user and per-item tables to candidate pairs by sorted-id
lookups (``searchsorted``, no Python loop over rows) and appends cross features, each a
function of the two id arrays. ``interaction_features`` builds a standard set from the
training interactions alone (activity, popularity, SVD affinity, item-kNN affinity),
which is what the LambdaMART baseline ranks with.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from harness.errors import DataValidationError, describe_examples

CrossFeature = Callable[[np.ndarray, np.ndarray], np.ndarray]

# dense user x item blocks of cross features stay under this many cells
_BLOCK_CELLS = 4_000_000


class _IdTable:
    """A numeric feature table indexed by integer id, looked up in bulk."""

    def __init__(self, table: pd.DataFrame, *, what: str) -> None:
        if not isinstance(table, pd.DataFrame):
            raise DataValidationError(f"{what}: expected a DataFrame indexed by id, got {type(table).__name__}")
        ids = np.asarray(table.index)
        if not np.issubdtype(ids.dtype, np.integer):
            raise DataValidationError(f"{what}: the index must hold integer ids, got dtype {ids.dtype}")
        dup = pd.Index(ids).duplicated()
        if dup.any():
            raise DataValidationError(f"{what}: {int(dup.sum())} duplicate ids in the index "
                                      f"({describe_examples(ids[dup])})")
        for col in table.columns:
            values = table[col].to_numpy()
            if not np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_):
                raise DataValidationError(f"{what}: column {col!r} must be numeric, got dtype {values.dtype}")
            bad = ~np.isfinite(values.astype(np.float64))
            if bad.any():
                raise DataValidationError(f"{what}: column {col!r} has {int(bad.sum())} NaN or infinite "
                                          f"values (ids {describe_examples(ids[bad])})")
        order = np.argsort(ids, kind="stable")
        self.ids = ids[order].astype(np.int64)
        self.values = table.to_numpy(dtype=np.float64)[order]
        self.columns = [str(c) for c in table.columns]
        self.what = what

    def lookup(self, ids: np.ndarray, *, column: str) -> np.ndarray:
        pos = np.searchsorted(self.ids, ids)
        pos_c = np.minimum(pos, len(self.ids) - 1)
        unknown = self.ids[pos_c] != ids if len(self.ids) else np.ones(len(ids), dtype=bool)
        if unknown.any():
            raise DataValidationError(f"{self.what}: {int(unknown.sum())} rows have a {column!r} with no "
                                      f"features ({describe_examples(np.unique(ids[unknown]))})")
        return self.values[pos_c]


class FeatureBuilder:
    """Joins user, item and cross features for ``(query_id, item_id)`` pairs.

    Parameters
    ----------
    user_features : DataFrame, optional
        Indexed by user (query) id; numeric columns.
    item_features : DataFrame, optional
        Indexed by item id; numeric columns.
    cross : dict of name -> callable, optional
        ``f(query_ids, item_ids) -> ndarray (n,)``, vectorised over the pairs.
    query_col, item_col : str
        Id columns of the pairs frames given to :meth:`build`.

    Notes
    -----
    Column order of the output is: user features, item features, cross features, in
    the order given; ``feature_names`` lists it. Unknown ids are an error, never a
    silent zero.
    """

    def __init__(self, *, user_features: pd.DataFrame | None = None,
                 item_features: pd.DataFrame | None = None,
                 cross: dict[str, CrossFeature] | None = None,
                 query_col: str = "query_id", item_col: str = "item_id") -> None:
        self.users = _IdTable(user_features, what="user_features") if user_features is not None else None
        self.items = _IdTable(item_features, what="item_features") if item_features is not None else None
        self.cross = dict(cross or {})
        self.query_col = query_col
        self.item_col = item_col
        names = ([f"user_{c}" for c in self.users.columns] if self.users else []) + \
                ([f"item_{c}" for c in self.items.columns] if self.items else []) + list(self.cross)
        if not names:
            raise DataValidationError("FeatureBuilder: give at least one of user_features, item_features, cross")
        dup = pd.Index(names).duplicated()
        if dup.any():
            raise DataValidationError(f"FeatureBuilder: duplicate feature names "
                                      f"({describe_examples(np.asarray(names)[dup])})")
        self.feature_names = names

    def _ids(self, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(pairs, pd.DataFrame):
            raise DataValidationError(f"pairs: expected a DataFrame, got {type(pairs).__name__}")
        out = []
        for col in (self.query_col, self.item_col):
            if col not in pairs.columns:
                raise DataValidationError(f"pairs: missing column {col!r}; has {list(pairs.columns)}")
            values = pairs[col].to_numpy()
            if not np.issubdtype(values.dtype, np.integer):
                raise DataValidationError(f"pairs: column {col!r} must hold integer ids, got dtype {values.dtype}")
            out.append(values.astype(np.int64, copy=False))
        return out[0], out[1]

    def matrix(self, pairs: pd.DataFrame) -> np.ndarray:
        """Feature matrix ``(n_pairs, n_features)`` as float32 (what tree libraries eat)."""
        q, i = self._ids(pairs)
        blocks = []
        if self.users is not None:
            blocks.append(self.users.lookup(q, column=self.query_col))
        if self.items is not None:
            blocks.append(self.items.lookup(i, column=self.item_col))
        for name, fn in self.cross.items():
            values = np.asarray(fn(q, i), dtype=np.float64)
            if values.shape != (len(q),):
                raise DataValidationError(f"cross feature {name!r}: expected shape ({len(q)},), got {values.shape}")
            if not np.isfinite(values).all():
                raise DataValidationError(f"cross feature {name!r}: {int((~np.isfinite(values)).sum())} "
                                          "NaN or infinite values")
            blocks.append(values[:, None])
        return np.hstack(blocks).astype(np.float32)

    def build(self, pairs: pd.DataFrame) -> pd.DataFrame:
        """The features as a DataFrame with ``feature_names`` columns, aligned with ``pairs``."""
        return pd.DataFrame(self.matrix(pairs), columns=self.feature_names, index=pairs.index)


class EmbeddingDot:
    """Cross feature ``<U[q], V[i]>`` from embedding tables indexed by id."""

    def __init__(self, user_vectors: np.ndarray, item_vectors: np.ndarray) -> None:
        self.U = np.asarray(user_vectors, dtype=np.float64)
        self.V = np.asarray(item_vectors, dtype=np.float64)

    def __call__(self, q: np.ndarray, i: np.ndarray) -> np.ndarray:
        _check_range(q, len(self.U), "query_id")
        _check_range(i, len(self.V), "item_id")
        return np.einsum("nd,nd->n", self.U[q], self.V[i])


class UserItemProduct:
    """Cross feature ``(X @ S)[q, i]``: a user's history ``X`` times an item-item matrix ``S``.

    With ``S`` the cosine similarity of item columns this is the item-kNN score.
    Computed per block of distinct users, densely, and gathered at the pairs.
    """

    def __init__(self, history: sp.csr_matrix, similarity: sp.csr_matrix) -> None:
        self.X = sp.csr_matrix(history, dtype=np.float64)
        self.S = sp.csr_matrix(similarity, dtype=np.float64)

    def __call__(self, q: np.ndarray, i: np.ndarray) -> np.ndarray:
        _check_range(q, self.X.shape[0], "query_id")
        _check_range(i, self.S.shape[1], "item_id")
        users, inverse = np.unique(q, return_inverse=True)
        out = np.empty(len(q), dtype=np.float64)
        block = max(1, _BLOCK_CELLS // max(self.S.shape[1], 1))
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(0, len(users) + block, block))
        for b, start in enumerate(range(0, len(users), block)):
            dense = np.asarray((self.X[users[start : start + block]] @ self.S).todense())
            rows = order[bounds[b] : bounds[b + 1]]
            out[rows] = dense[inverse[rows] - start, i[rows]]
        return out


def _check_range(ids: np.ndarray, n: int, column: str) -> None:
    bad = (ids < 0) | (ids >= n)
    if bad.any():
        raise DataValidationError(f"{int(bad.sum())} rows have a {column!r} outside 0..{n - 1} "
                                  f"({describe_examples(np.unique(ids[bad]))})")


def interaction_matrix(train: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """Binary user x item CSR matrix of the training interactions (repeats count once)."""
    for col, n in (("user_id", n_users), ("item_id", n_items)):
        if col not in train.columns:
            raise DataValidationError(f"train: missing column {col!r}; has {list(train.columns)}")
        _check_range(train[col].to_numpy(), n, col)
    X = sp.csr_matrix((np.ones(len(train)), (train["user_id"].to_numpy(), train["item_id"].to_numpy())),
                      shape=(n_users, n_items))
    X.data[:] = 1.0
    return X


def cosine_item_similarity(X: sp.csr_matrix) -> sp.csr_matrix:
    """Cosine similarity of item columns of ``X``, diagonal zeroed.

    ``S[i, j] = <x_i, x_j> / (||x_i|| ||x_j||)``, 0 for items nobody interacted with.
    """
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0))).ravel()
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    Xn = sp.csr_matrix(X @ sp.diags(inv))
    S = sp.csr_matrix(Xn.T @ Xn)
    S.setdiag(0.0)
    S.eliminate_zeros()
    return S


def truncated_svd_factors(X: sp.csr_matrix, dim: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``U sqrt(s)``, ``V sqrt(s)`` of a rank-``dim`` SVD of ``X`` (seeded, deterministic)."""
    from sklearn.utils.extmath import randomized_svd

    dim = max(1, min(dim, min(X.shape) - 1))
    U, s, Vt = randomized_svd(X, dim, random_state=seed)
    root = np.sqrt(s)
    return U * root, Vt.T * root


def interaction_features(train: pd.DataFrame, n_users: int, n_items: int, *, svd_dim: int = 16,
                         seed: int = 0) -> FeatureBuilder:
    """A standard feature set learned from interactions only.

    Features: ``user_log_activity`` = log(1 + #interactions of the user),
    ``item_log_popularity`` = log(1 + #interactions of the item), ``svd`` = the
    rank-``svd_dim`` SVD reconstruction ``<U_q, V_i>`` of the binary interaction
    matrix, ``knn`` = the item-kNN (cosine) score ``sum_{j in history(q)} S[j, i]``.
    """
    X = interaction_matrix(train, n_users, n_items)
    users = pd.DataFrame({"log_activity": np.log1p(np.asarray(X.sum(axis=1)).ravel())},
                         index=pd.RangeIndex(n_users))
    items = pd.DataFrame({"log_popularity": np.log1p(np.asarray(X.sum(axis=0)).ravel())},
                         index=pd.RangeIndex(n_items))
    U, V = truncated_svd_factors(X, svd_dim, seed=seed)
    cross = {"svd": EmbeddingDot(U, V), "knn": UserItemProduct(X, cosine_item_similarity(X))}
    return FeatureBuilder(user_features=users, item_features=items, cross=cross)
