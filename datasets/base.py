"""The evaluation data every loader produces, and its content fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import scipy.sparse as sp


@dataclass
class InteractionDataset:
    """Train interactions plus held-out graded judgments.

    Attributes
    ----------
    name : str
        Human-readable name (goes to MLflow params).
    train : DataFrame
        Columns ``user_id``, ``item_id`` (int64, contiguous from 0) and optional extras.
    qrels : DataFrame
        Held-out judgments ``query_id`` (= user id), ``item_id``, ``relevance`` (int >= 0).
    n_users, n_items : int
        Sizes of the id spaces; ids are ``0..n-1``.
    settings : dict
        Generator or loader settings that, with the tables, define the fingerprint.
    truth : dict
        Known ground truth for synthetic worlds (e.g. ``true_scores[n_users, n_items]``).
    item_categories : DataFrame, optional
        Long table ``item_id``, ``category`` (e.g. MovieLens genres): one row per item and
        category, for category calibration (Steck's KL) and diversity.
    user_ids, item_ids : ndarray, optional
        Raw id of each internal id: ``item_ids[j]`` is the id in the source file of item ``j``.
    item_features, user_features : DataFrame, optional
        Side tables keyed by ``item_id`` / ``user_id`` (internal ids).
    cold_start : dict
        Counts of users/items/judgments that only occur in the held-out part.
    split_stats : dict
        Rows in train and test, users with held-out rows and users without any.
    segments : dict
        Named subsets of query ids (e.g. ``cold_users``) that can be evaluated apart.
    candidates : DataFrame, optional
        ``query_id``, ``item_id`` pairs that models must rank instead of the full catalogue
        (see ``harness.datasets.candidates``); None means the full catalogue.
    warnings : list of str
        What a reader of the results must know (sampled candidates, removed users, ...).
    """

    name: str
    train: pd.DataFrame
    qrels: pd.DataFrame
    n_users: int
    n_items: int
    settings: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)
    item_categories: pd.DataFrame | None = None
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    item_features: pd.DataFrame | None = None
    user_features: pd.DataFrame | None = None
    cold_start: dict[str, int] = field(default_factory=dict)
    split_stats: dict[str, int] = field(default_factory=dict)
    segments: dict[str, np.ndarray] = field(default_factory=dict)
    candidates: pd.DataFrame | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def query_ids(self) -> np.ndarray:
        """Users with at least one judgment, ascending."""
        return np.unique(self.qrels["query_id"].to_numpy())

    @property
    def fingerprint(self) -> str:
        """Content hash of the tables and settings: equal data gives equal fingerprints."""
        tables = {"train": self.train, "qrels": self.qrels}
        optional = {"item_categories": self.item_categories, "item_features": self.item_features,
                    "user_features": self.user_features, "candidates": self.candidates}
        tables.update({k: v for k, v in optional.items() if v is not None})
        return fingerprint_tables(tables, self.settings)

    def category_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        """Category names (sorted) and a boolean ``(n_items, n_categories)`` membership matrix."""
        if self.item_categories is None:
            return np.array([], dtype=object), np.zeros((self.n_items, 0), dtype=bool)
        names, codes = np.unique(self.item_categories["category"].to_numpy(dtype=object), return_inverse=True)
        out = np.zeros((self.n_items, len(names)), dtype=bool)
        out[self.item_categories["item_id"].to_numpy(), codes] = True
        return names, out

    def restrict_queries(self, query_ids: np.ndarray, *, label: str) -> "InteractionDataset":
        """The same data with judgments kept only for ``query_ids`` (e.g. a segment such as
        ``segments["cold_users"]``), named ``<name>[label]``; train is unchanged."""
        keep = np.isin(self.qrels["query_id"].to_numpy(), np.asarray(query_ids))
        cands = self.candidates
        if cands is not None:
            cands = cands[np.isin(cands["query_id"].to_numpy(), np.asarray(query_ids))].reset_index(drop=True)
        return replace(self, name=f"{self.name}[{label}]", qrels=self.qrels[keep].reset_index(drop=True),
                       settings={**self.settings, "queries": label}, candidates=cands)


def seen_matrix(train: pd.DataFrame, n_users: int, n_items: int) -> "sp.csr_matrix":
    """Boolean CSR matrix of (user, item) pairs seen in training."""
    import scipy.sparse as sp

    users = train["user_id"].to_numpy()
    items = train["item_id"].to_numpy()
    data = np.ones(len(users), dtype=bool)
    return sp.csr_matrix((data, (users, items)), shape=(n_users, n_items))


def seen_pairs(seen: "sp.csr_matrix", users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """``out[r, j]``: ``items[r, j]`` (codes, shape (m, k); negative = padding, never
    seen) is a training item of ``users[r]``, looked up in ``seen`` (:func:`seen_matrix`)."""
    rows = np.broadcast_to(np.asarray(users, dtype=np.int64)[:, None], items.shape)
    hit = np.asarray(seen[rows.ravel(), np.maximum(items, 0).ravel()], dtype=bool).reshape(items.shape)
    return hit & (items >= 0)


def fingerprint_tables(tables: dict[str, pd.DataFrame], settings: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) over table contents, column names and settings."""
    digest = TableDigest()
    for name in sorted(tables):
        digest.add_table(name, tables[name].columns, [tables[name]])
    return digest.hexdigest(settings)


class TableDigest:
    """:func:`fingerprint_tables` fed table by table (in name order) and each table in row
    order, chunk by chunk: the same digest from data that never sits in one process (the
    Spark engine streams a collection's judgments through it, one partition at a time,
    as row hashes computed where the rows are)."""

    def __init__(self) -> None:
        self._digest = hashlib.sha256()

    @staticmethod
    def row_hashes(chunk: pd.DataFrame) -> bytes:
        """The digest's input for the rows of ``chunk`` (one table's columns and dtypes)."""
        return pd.util.hash_pandas_object(chunk, index=False).to_numpy().tobytes()

    def add_table(self, name: str, columns: Iterable[object], chunks: Iterable[pd.DataFrame | bytes]) -> None:
        """One table: its name, column names, then its rows, as frames or as
        :meth:`row_hashes` of frames."""
        self._digest.update(name.encode())
        self._digest.update(json.dumps([str(c) for c in columns]).encode())
        for chunk in chunks:
            self._digest.update(chunk if isinstance(chunk, bytes) else self.row_hashes(chunk))

    def hexdigest(self, settings: dict[str, Any]) -> str:
        self._digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
        return self._digest.hexdigest()[:16]
