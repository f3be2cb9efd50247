"""Reference baselines: random, popularity, and a noisy oracle for synthetic worlds."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import ConfigError

from ._scoring import CatalogueScorer


class RandomRetriever(CatalogueScorer):
    """Scores items uniformly at random (seeded): the floor every model must beat."""

    def __init__(self, *, seed: int = 0, exclude_seen: bool = True) -> None:
        self.seed = seed
        self.exclude_seen = exclude_seen

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "RandomRetriever":
        self._remember_seen(train, n_users, n_items)
        return self

    def score(self, query_ids: np.ndarray) -> np.ndarray:
        # a counter-based hash of (seed, query, item): a query's scores do not depend
        # on which batch it is in, and nothing of size n_users x n_items is stored
        q = np.asarray(query_ids, dtype=np.uint64)[:, None]
        i = np.arange(self.n_items, dtype=np.uint64)[None, :]
        return _uniform_hash(np.uint64(self.seed), q, i)


def _uniform_hash(seed: np.uint64, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) floats from the splitmix64 finaliser of (seed, a, b)."""
    with np.errstate(over="ignore"):
        x = seed * np.uint64(0x9E3779B97F4A7C15) + a * np.uint64(0xBF58476D1CE4E5B9) + b
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    return (x >> np.uint64(11)).astype(np.float64) / float(1 << 53)


class PopularityRetriever(CatalogueScorer):
    """Scores each item by its number of training interactions."""

    def __init__(self, *, exclude_seen: bool = True) -> None:
        self.exclude_seen = exclude_seen
        self.counts: np.ndarray | None = None

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "PopularityRetriever":
        self._remember_seen(train, n_users, n_items)
        self.counts = np.bincount(train["item_id"].to_numpy(), minlength=n_items).astype(np.float64)
        return self

    def score(self, query_ids: np.ndarray) -> np.ndarray:
        if self.counts is None:
            raise ConfigError("PopularityRetriever: call fit() before retrieve()")
        return np.broadcast_to(self.counts, (len(query_ids), self.n_items)).copy()


class OracleRetriever(CatalogueScorer):
    """Scores by a known true affinity plus Gaussian noise (synthetic worlds only).

    With ``noise=0`` it is the ideal ranker of the world; larger noise degrades it
    smoothly, which makes it a model with a known, tunable quality for tests and demos.
    """

    def __init__(self, true_scores: np.ndarray, *, noise: float = 0.0, seed: int = 0,
                 exclude_seen: bool = True) -> None:
        if noise < 0:
            raise ConfigError(f"oracle: noise must be >= 0, got {noise}")
        self.true_scores = np.asarray(true_scores, dtype=np.float64)
        self.noise = noise
        self.seed = seed
        self.exclude_seen = exclude_seen

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "OracleRetriever":
        self._remember_seen(train, n_users, n_items)
        rng = np.random.default_rng(self.seed)
        self._noisy = self.true_scores + rng.normal(0.0, self.noise, self.true_scores.shape)
        return self

    def score(self, query_ids: np.ndarray) -> np.ndarray:
        return self._noisy[query_ids]
