"""The evaluation data every loader produces, and its content fingerprint."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


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
    """

    name: str
    train: pd.DataFrame
    qrels: pd.DataFrame
    n_users: int
    n_items: int
    settings: dict[str, Any] = field(default_factory=dict)
    truth: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def query_ids(self) -> np.ndarray:
        """Users with at least one judgment, ascending."""
        return np.unique(self.qrels["query_id"].to_numpy())

    @property
    def fingerprint(self) -> str:
        """Content hash of the tables and settings: equal data gives equal fingerprints."""
        return fingerprint_tables({"train": self.train, "qrels": self.qrels}, self.settings)


def fingerprint_tables(tables: dict[str, pd.DataFrame], settings: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) over table contents, column names and settings."""
    digest = hashlib.sha256()
    for name in sorted(tables):
        df = tables[name]
        digest.update(name.encode())
        digest.update(json.dumps([str(c) for c in df.columns]).encode())
        digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]
