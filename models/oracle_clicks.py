"""A click model that knows the synthetic world's true click probabilities.

``predict_proba`` returns ``true_p ** power``: ``power=1`` is calibrated by
construction, ``power=2`` (too low everywhere, most of all in the middle) and
``power=0.5`` (too high) are miscalibrated by a known amount while ranking exactly as
well, since the transform is monotone. It is also a retriever (by true probability),
so it runs through the ranking evaluation like any other model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datasets.synthetic_clicks import CLICK_BASE_RATE, CLICK_SCALE, click_probabilities
from harness.errors import AdapterError, ConfigError

from ._scoring import CatalogueScorer


class OracleClickModel(CatalogueScorer):
    """True click probability, optionally distorted as ``p ** power``.

    Parameters
    ----------
    true_scores : ndarray (n_users, n_items)
        The world's true affinity (``dataset.truth["true_scores"]``).
    power : float, default 1.0
        Distortion exponent (> 0); 1 is the calibrated oracle.
    scale, base_rate : float
        Must match the click log's (see ``harness.datasets.synthetic_clicks``).
    """

    def __init__(self, true_scores: np.ndarray, *, power: float = 1.0, scale: float = CLICK_SCALE,
                 base_rate: float = CLICK_BASE_RATE, exclude_seen: bool = True) -> None:
        if not np.isfinite(power) or power <= 0:
            raise ConfigError(f"oracle_clicks: power must be a finite number > 0, got {power!r}")
        self.power = float(power)
        self.exclude_seen = exclude_seen
        self.proba = click_probabilities(true_scores, scale=scale, base_rate=base_rate) ** self.power
        self.n_items = self.proba.shape[1]

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "OracleClickModel":
        self._remember_seen(train, n_users, n_items)
        return self

    def score(self, query_ids: np.ndarray) -> np.ndarray:
        return self.proba[query_ids]

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """``true_p ** power`` of each (query_id, item_id) row."""
        missing = [c for c in ("query_id", "item_id") if c not in pairs.columns]
        if missing:
            raise AdapterError(f"oracle_clicks: pairs lack columns {missing}")
        q, i = pairs["query_id"].to_numpy(), pairs["item_id"].to_numpy()
        out = (q < 0) | (q >= self.proba.shape[0]) | (i < 0) | (i >= self.proba.shape[1])
        if out.any():
            raise AdapterError(f"oracle_clicks: {int(out.sum())} rows have unknown ids "
                               f"(e.g. query {q[out][0]}, item {i[out][0]})")
        return self.proba[q, i]
