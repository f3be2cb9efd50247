"""LambdaMART in XGBoost over item-kNN candidates: a two-stage reference baseline.

Burges (2010), "From RankNet to LambdaRank to LambdaMART: An Overview", MSR-TR-2010-82.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.types import Ranking
from harness.errors import ConfigError, DataValidationError

from ._candidates import candidate_pairs
from ._torch_train import check_hyper
from .features import interaction_features
from .knn import ItemKNN
from .xgboost_ranker import XGBoostRanker


def holdout_split(train: pd.DataFrame, n_holdout: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per user, ``n_holdout`` random interactions (seeded) become labels; the rest history.

    Users with no more than ``n_holdout`` interactions keep them all as history.
    """
    rng = np.random.default_rng(seed)
    key = rng.random(len(train))
    users = train["user_id"].to_numpy()
    order = np.lexsort((key, users))
    sorted_users = users[order]
    starts = np.r_[0, np.nonzero(np.diff(sorted_users))[0] + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    rank = np.arange(len(order)) - np.repeat(starts, sizes)
    held = np.zeros(len(train), dtype=bool)
    held[order] = (rank < n_holdout) & (np.repeat(sizes, sizes) > n_holdout)
    return train[~held], train[held]


class LambdaMART:
    """Item-kNN retrieves ``n_candidates``; an ``XGBRanker(rank:ndcg)`` re-ranks them.

    Parameters
    ----------
    n_candidates : int, default 200
        Candidates per query from item-kNN (cosine).
    n_holdout : int, default 5
        Training interactions per user held out as labels while training the ranker.
    n_estimators, max_depth, learning_rate : XGBoost settings
    seed : int, default 0
        Seeds the hold-out split, the SVD feature and XGBoost.
    exclude_seen : bool, default True
    n_jobs : int, default 1
        XGBoost threads (more threads than free cores slows the small lists here down).

    Notes
    -----
    Training: per user, ``n_holdout`` interactions are held out; candidates and the
    features of :func:`~harness.models.features.interaction_features` are computed on
    the rest; a candidate's label is 1 if held out, else 0; LambdaMART optimises nDCG
    of the candidate lists (``rank:ndcg``). Scoring: candidates and features are
    recomputed on all training interactions and re-ranked by the model.
    """

    def __init__(self, *, n_candidates: int = 200, n_holdout: int = 5, n_estimators: int = 100,
                 max_depth: int = 4, learning_rate: float = 0.1, seed: int = 0,
                 exclude_seen: bool = True, n_jobs: int = 1) -> None:
        check_hyper("lambdamart", n_candidates=n_candidates, n_holdout=n_holdout, n_estimators=n_estimators,
                    max_depth=max_depth, learning_rate=learning_rate)
        self.n_candidates, self.n_holdout = n_candidates, n_holdout
        self.n_estimators, self.max_depth, self.learning_rate = n_estimators, max_depth, learning_rate
        self.seed, self.exclude_seen, self.n_jobs = seed, exclude_seen, n_jobs
        self.ranker: XGBoostRanker | None = None

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "LambdaMART":
        import xgboost as xgb

        history, held = holdout_split(train, self.n_holdout, self.seed)
        if len(held) == 0:
            raise DataValidationError(f"lambdamart: no user has more than n_holdout={self.n_holdout} "
                                      "training interactions to learn from")
        knn = ItemKNN(exclude_seen=True).fit(history, n_users=n_users, n_items=n_items)
        features = interaction_features(history, n_users, n_items, seed=self.seed)
        users = np.unique(held["user_id"].to_numpy())
        pool = knn.retrieve(users, self.n_candidates)
        _, _, pairs = candidate_pairs(pool)  # row-major: grouped by query, as XGBoost needs
        held_keys = np.unique(held["user_id"].to_numpy() * n_items + held["item_id"].to_numpy())
        labels = np.isin(pairs["query_id"].to_numpy() * n_items + pairs["item_id"].to_numpy(), held_keys)
        model = xgb.XGBRanker(objective="rank:ndcg", n_estimators=self.n_estimators, max_depth=self.max_depth,
                              learning_rate=self.learning_rate, random_state=self.seed, n_jobs=self.n_jobs,
                              tree_method="hist")
        # a DataFrame, so that the model records its feature names (checked when it is served)
        model.fit(features.build(pairs), labels.astype(np.float32), qid=pairs["query_id"].to_numpy())
        knn_full = ItemKNN(exclude_seen=self.exclude_seen)
        self.ranker = XGBoostRanker(model, interaction_features(train, n_users, n_items, seed=self.seed),
                                    candidates=knn_full, n_candidates=self.n_candidates,
                                    exclude_seen=self.exclude_seen, name="LambdaMART")
        self.ranker.fit(train, n_users=n_users, n_items=n_items)
        return self

    def _fitted(self) -> XGBoostRanker:
        if self.ranker is None:
            raise ConfigError("LambdaMART: call fit() before retrieve() or rank()")
        return self.ranker

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        return self._fitted().retrieve(query_ids, k)

    def rank(self, candidates: Ranking, k: int) -> Ranking:
        return self._fitted().rank(candidates, k)

    @property
    def booster(self) -> Any:
        return self._fitted().booster
