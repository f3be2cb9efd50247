"""XGBoost learning-to-rank models as harness rankers.

Wraps an ``xgboost.XGBRanker`` or a ``Booster`` trained with a ranking objective
(``rank:ndcg``, ``rank:pairwise``, ``rank:map``); candidate pairs go through a
:class:`~harness.models.features.FeatureBuilder` and ``Booster.inplace_predict``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ConfigError

from ._candidates import DEFAULT_PAIR_BATCH, PairScorer
from .features import FeatureBuilder

RANKING_OBJECTIVES = ("rank:ndcg", "rank:pairwise", "rank:map")


def load_booster(model: Any) -> Any:
    """A ``Booster`` from an ``XGBRanker``, a ``Booster`` or a saved model file (json/ubj)."""
    import xgboost as xgb

    if isinstance(model, (str, Path)):
        from .safe_load import load_xgboost_booster

        return load_xgboost_booster(model)
    if isinstance(model, xgb.XGBModel):
        return model.get_booster()
    if isinstance(model, xgb.Booster):
        return model
    raise ConfigError(f"xgboost_ranker: expected an XGBRanker, a Booster or a model path, "
                      f"got {type(model).__name__}")


class XGBoostRanker(PairScorer):
    """Scores candidate lists with an XGBoost ranking model.

    Parameters
    ----------
    model : XGBRanker, Booster, str or Path
        A trained model with objective in ``rank:ndcg``, ``rank:pairwise``, ``rank:map``.
    features : FeatureBuilder
        Builds the model's input columns, in training order, from ``(query_id, item_id)``.
    candidates : Retriever, optional
        Makes this adapter a retriever too: ``retrieve`` ranks its top ``n_candidates``.
    n_candidates : int, optional
        Candidates per query asked of ``candidates`` (default: the requested k).
    exclude_seen : bool, default True
        Only for whole-catalogue retrieval (no ``candidates``).
    batch_size : int
        Pairs per ``inplace_predict`` call.
    name : str, optional
        Used in error messages.
    """

    def __init__(self, model: Any, features: FeatureBuilder, *, candidates: Any = None,
                 n_candidates: int | None = None, exclude_seen: bool = True,
                 batch_size: int = DEFAULT_PAIR_BATCH, name: str | None = None) -> None:
        self.booster = load_booster(model)
        objective = json.loads(self.booster.save_config())["learner"]["objective"]["name"]
        if objective not in RANKING_OBJECTIVES:
            raise ConfigError(f"xgboost_ranker: the model's objective is {objective!r}; expected one of "
                              f"{list(RANKING_OBJECTIVES)}")
        if not isinstance(features, FeatureBuilder):
            raise ConfigError(f"xgboost_ranker: features must be a FeatureBuilder, got {type(features).__name__}")
        n_model = self.booster.num_features()
        if n_model != len(features.feature_names):
            raise ConfigError(f"xgboost_ranker: the model expects {n_model} features, the feature builder "
                              f"makes {len(features.feature_names)} ({features.feature_names})")
        trained_names = self.booster.feature_names
        if trained_names is not None and list(trained_names) != features.feature_names:
            raise ConfigError(f"xgboost_ranker: feature names differ: model {list(trained_names)}, "
                              f"builder {features.feature_names}")
        self.objective = objective
        self.features = features
        self.candidates, self.n_candidates = candidates, n_candidates
        self.exclude_seen, self.batch_size = exclude_seen, batch_size
        self.name = name or f"XGBoostRanker({objective})"

    def _score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(self.features.matrix(pairs)), dtype=np.float64)
