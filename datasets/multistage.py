"""A synthetic two-stage (retrieve, then rank) world in which the effect of a better
retriever or a better ranker on the final metrics is known exactly.

Every user has exactly ``R`` relevant items (relevance 1), drawn uniformly. A retriever of
recall ``r`` returns ``N`` candidates that hold exactly ``m = round(r R)`` of the user's
relevant items (nested: a better retriever's relevant candidates include a worse one's)
and ``N - m`` non-relevant items drawn uniformly. A ranker of quality ``p`` orders a
user's candidates perfectly (relevant first) with probability ``p``, and uniformly at
random otherwise, independently per user. For a cut-off ``k`` the expected per-user
metrics are then closed-form (``m`` relevant among ``N`` candidates):

- perfect order: ``hits = min(m, k)``; DCG@k = sum_{i <= min(m, k)} 1 / log2(i + 1)
- random order: each of the first ``min(k, N)`` positions is relevant with probability
  ``m / N``, so E[hits] = min(k, N) m / N and E[DCG@k] = (m / N) sum_{i <= min(k, N)} 1/log2(i+1);
  P(hit) = 1 - C(N - m, k) / C(N, k) (hypergeometric)
- quality ``p``: ``p * perfect + (1 - p) * random``.

Recall@k = hits / R, precision@k = hits / k, nDCG@k = DCG@k / IDCG@k with
IDCG@k = sum_{i <= min(R, k)} 1 / log2(i + 1). The effect of swapping one stage is the
difference of two such expectations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.special import comb

from harness.errors import ConfigError
from harness.types import Ranking

from .base import InteractionDataset

EXACT_METRICS = ("recall", "precision", "ndcg", "hit_rate")


@dataclass
class MultiStageWorld:
    """The world: judgments, each retriever's candidates, and exact expectations.

    Attributes
    ----------
    dataset : InteractionDataset
        ``qrels`` holds the ``R`` relevant items of every user; train is a random sample of
        non-relevant interactions (for models that need one); ``truth["true_relevance"]``.
    n_relevant, n_candidates : int
        ``R`` and ``N``.
    retrievers : dict[str, ndarray]
        Retriever name -> ``(n_users, N)`` candidate item ids (sorted by item id).
    relevant_retrieved : dict[str, int]
        Retriever name -> ``m``, relevant items among each user's candidates.
    """

    dataset: InteractionDataset
    n_relevant: int
    n_candidates: int
    retrievers: dict[str, np.ndarray] = field(default_factory=dict)
    relevant_retrieved: dict[str, int] = field(default_factory=dict)

    def rank(self, retriever: str, *, ranker_quality: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Final ranking of a (retriever, ranker) pair: ``(items, scores)`` of shape
        ``(n_users, N)``, rows in user order, scores descending."""
        if not 0.0 <= ranker_quality <= 1.0:
            raise ConfigError(f"multistage: ranker_quality must be in [0, 1], got {ranker_quality}")
        cands = self._candidates(retriever)
        rng = np.random.default_rng(seed)
        noise = rng.random(cands.shape)
        perfect = rng.random(len(cands)) < ranker_quality
        rel = self.dataset.truth["true_relevance"][np.arange(len(cands))[:, None], cands]
        # a perfect ranker puts relevant items first (random order among equals)
        scores = noise + np.where(perfect[:, None], 2.0 * rel, 0.0)
        order = np.argsort(-scores, axis=1, kind="stable")
        return np.take_along_axis(cands, order, axis=1), np.take_along_axis(scores, order, axis=1)

    def expected(self, metric: str, k: int, *, retriever: str, ranker_quality: float) -> float:
        """Exact expected mean of ``metric@k`` (recall, precision, ndcg, hit_rate) over users."""
        if metric not in EXACT_METRICS:
            raise ConfigError(f"multistage: metric {metric!r} has no closed form here; known: {EXACT_METRICS}")
        if k < 1:
            raise ConfigError(f"multistage: k must be >= 1, got {k}")
        m, n, r = self._candidates_m(retriever), self.n_candidates, self.n_relevant
        depth = min(k, n)
        disc = 1.0 / np.log2(np.arange(2, max(k, r) + 2))
        perfect_hits, random_hits = min(m, k), depth * m / n
        values = {
            "recall": (perfect_hits / r, random_hits / r),
            "precision": (perfect_hits / k, random_hits / k),
            "ndcg": (disc[: min(m, k)].sum() / disc[: min(r, k)].sum(), m / n * disc[:depth].sum() / disc[: min(r, k)].sum()),
            "hit_rate": (float(m > 0), 1.0 - comb(n - m, depth, exact=True) / comb(n, depth, exact=True)),
        }[metric]
        return float(ranker_quality * values[0] + (1.0 - ranker_quality) * values[1])

    def retriever(self, name: str) -> "WorldRetriever":
        """Retriever ``name`` as a pipeline stage: its ``N`` candidates (by item id)."""
        self._candidates(name)
        return WorldRetriever(self, name)

    def ranker(self, quality: float, *, seed: int = 0) -> "WorldRanker":
        """A ranker of quality ``p`` as a pipeline stage (see :class:`WorldRanker`)."""
        if not 0.0 <= quality <= 1.0:
            raise ConfigError(f"multistage: ranker quality must be in [0, 1], got {quality}")
        return WorldRanker(self, quality, seed)

    def _candidates(self, retriever: str) -> np.ndarray:
        if retriever not in self.retrievers:
            raise ConfigError(f"multistage: unknown retriever {retriever!r}; known: {sorted(self.retrievers)}")
        return self.retrievers[retriever]

    def _candidates_m(self, retriever: str) -> int:
        self._candidates(retriever)
        return self.relevant_retrieved[retriever]


def make_multistage(*, n_users: int = 500, n_items: int = 400, n_relevant: int = 10, n_candidates: int = 50,
                    retriever_recalls: tuple[float, ...] = (0.5, 0.8, 1.0), n_train_per_user: int = 5,
                    seed: int = 0) -> MultiStageWorld:
    """Build a multi-stage world (see the module docstring).

    Parameters
    ----------
    n_users, n_items : int
        World size.
    n_relevant : int
        ``R``, relevant items per user.
    n_candidates : int
        ``N``, candidates each retriever returns per user (``R <= N``, ``R + N + n_train_per_user <= n_items``).
    retriever_recalls : tuple of float
        One retriever per recall ``r`` in [0, 1], named ``"recall=<r>"``.
    n_train_per_user : int
        Non-relevant training interactions per user (never among the candidates).
    seed : int
        Seed of everything random.
    """
    if not 1 <= n_relevant <= n_candidates:
        raise ConfigError(f"multistage: need 1 <= n_relevant ({n_relevant}) <= n_candidates ({n_candidates})")
    if n_relevant + n_candidates + n_train_per_user > n_items:
        raise ConfigError(f"multistage: n_items={n_items} is too small for {n_candidates} candidates, "
                          f"{n_relevant} relevant and {n_train_per_user} train items per user")
    if not retriever_recalls or any(not 0.0 <= r <= 1.0 for r in retriever_recalls):
        raise ConfigError(f"multistage: retriever_recalls must be in [0, 1], got {retriever_recalls}")
    rng = np.random.default_rng(seed)
    # one random item order per user: the first R are relevant, the next ones non-relevant pools
    perm = np.argsort(rng.random((n_users, n_items)), axis=1)
    relevant = perm[:, :n_relevant]
    negatives = perm[:, n_relevant:]
    truth = np.zeros((n_users, n_items), dtype=np.int64)
    truth[np.arange(n_users)[:, None], relevant] = 1
    retrievers, retrieved = {}, {}
    for r in retriever_recalls:
        m = int(round(r * n_relevant))
        cands = np.concatenate([relevant[:, :m], negatives[:, : n_candidates - m]], axis=1)
        retrievers[f"recall={r:g}"] = np.sort(cands, axis=1)
        retrieved[f"recall={r:g}"] = m
    # training interactions come from items no retriever returns (the tail of the order)
    train_items = perm[:, n_items - n_train_per_user :]
    train = pd.DataFrame({"user_id": np.repeat(np.arange(n_users, dtype=np.int64), n_train_per_user),
                          "item_id": train_items.ravel().astype(np.int64)})
    uq, iq = np.nonzero(truth)
    qrels = pd.DataFrame({"query_id": uq.astype(np.int64), "item_id": iq.astype(np.int64),
                          "relevance": np.ones(len(uq), dtype=np.int64)})
    settings = {"kind": "multistage", "n_users": n_users, "n_items": n_items, "n_relevant": n_relevant,
                "n_candidates": n_candidates, "retriever_recalls": list(retriever_recalls),
                "n_train_per_user": n_train_per_user, "seed": seed}
    ds = InteractionDataset(name=f"multistage-{n_users}x{n_items}", train=train, qrels=qrels, n_users=n_users,
                            n_items=n_items, settings=settings, truth={"true_relevance": truth})
    return MultiStageWorld(ds, n_relevant, n_candidates, retrievers, retrieved)


def _hash_uniform(seed: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A uniform in [0, 1) per (seed, a, b): SplitMix64's finaliser of a mixed key."""
    with np.errstate(over="ignore"):
        z = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + b.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)
             + np.uint64(seed % (1 << 63)) * np.uint64(0x94D049BB133111EB))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class WorldRetriever:
    """A world retriever as a first pipeline stage: every user's ``N`` candidates, in item
    id order, score 0 (``retrieve`` keeps the first ``k``)."""

    world: MultiStageWorld
    name: str

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        q = np.asarray(query_ids, dtype=np.int64)
        items = self.world.retrievers[self.name][q, :k]
        return Ranking.trusted(q, items, np.zeros(items.shape))


@dataclass(frozen=True)
class WorldRanker:
    """A ranker of quality ``p`` as a later pipeline stage: for a fraction ``p`` of the users
    (a fixed coin per user and ``seed``) it puts their relevant candidates first, for the
    others it orders them at random (a fixed uniform per user, item and ``seed``). Over
    the world's users its expected metrics are :meth:`MultiStageWorld.expected`'s."""

    world: MultiStageWorld
    quality: float
    seed: int = 0

    def rank(self, candidates: Ranking, k: int) -> Ranking:
        q = np.asarray(candidates.query_ids, dtype=np.int64)
        items = candidates.items
        pad = items < 0
        perfect = _hash_uniform(self.seed, q, np.full(len(q), -1, dtype=np.int64)) < self.quality
        rel = self.world.dataset.truth["true_relevance"][q[:, None], np.where(pad, 0, items)]
        scores = _hash_uniform(self.seed, np.broadcast_to(q[:, None], items.shape), items)
        scores = np.where(pad, -np.inf, scores + np.where(perfect[:, None], 2.0 * rel, 0.0))
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return Ranking.trusted(q, np.take_along_axis(items, order, axis=1), np.take_along_axis(scores, order, axis=1))
