"""scikit-learn classifiers and regressors on (query, item) features, as ranker and as
pointwise probability model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.types import check_probabilities
from harness.errors import ConfigError

from ._candidates import DEFAULT_PAIR_BATCH, PairScorer, score_in_batches
from .features import FeatureBuilder


class SklearnPointwise(PairScorer):
    """A fitted scikit-learn estimator scoring ``(query_id, item_id)`` pairs.

    Parameters
    ----------
    estimator : fitted scikit-learn estimator
        A classifier with ``predict_proba`` (the score is P(``positive_class``)) or a
        regressor with ``predict`` (the score is the prediction).
    features : FeatureBuilder
        Builds the estimator's input columns from the pairs.
    positive_class : default 1
        The class whose probability is the score (classifiers only).
    candidates, n_candidates, exclude_seen, batch_size, name
        As for :class:`~harness.models.xgboost_ranker.XGBoostRanker`.

    Notes
    -----
    As a ``Ranker`` it orders candidates by score; as a ``PointwiseModel``
    ``predict_proba(pairs)`` returns the scores, which must lie in [0, 1] (a regressor
    whose predictions do not is refused there, not clipped).
    """

    def __init__(self, estimator: Any, features: FeatureBuilder, *, positive_class: Any = 1,
                 candidates: Any = None, n_candidates: int | None = None, exclude_seen: bool = True,
                 batch_size: int = DEFAULT_PAIR_BATCH, name: str | None = None) -> None:
        if not isinstance(features, FeatureBuilder):
            raise ConfigError(f"sklearn: features must be a FeatureBuilder, got {type(features).__name__}")
        self.name = name or f"SklearnPointwise({type(estimator).__name__})"
        if hasattr(estimator, "predict_proba"):
            classes = np.asarray(getattr(estimator, "classes_", [])).tolist()
            if positive_class not in classes:
                raise ConfigError(f"{self.name}: positive_class {positive_class!r} is not among the fitted "
                                  f"classes {classes} (is the estimator fitted?)")
            self._column: int | None = classes.index(positive_class)
        elif hasattr(estimator, "predict"):
            self._column = None
        else:
            raise ConfigError(f"{self.name}: the estimator has neither predict_proba nor predict")
        n_in = getattr(estimator, "n_features_in_", None)
        if n_in is not None and n_in != len(features.feature_names):
            raise ConfigError(f"{self.name}: the estimator was fitted on {n_in} features, the feature "
                              f"builder makes {len(features.feature_names)} ({features.feature_names})")
        self.estimator, self.features = estimator, features
        self.candidates, self.n_candidates = candidates, n_candidates
        self.exclude_seen, self.batch_size = exclude_seen, batch_size

    def _score_pairs(self, pairs: pd.DataFrame) -> np.ndarray:
        X = self.features.build(pairs) if hasattr(self.estimator, "feature_names_in_") else \
            self.features.matrix(pairs)
        if self._column is not None:
            return np.asarray(self.estimator.predict_proba(X))[:, self._column]
        return np.asarray(self.estimator.predict(X), dtype=np.float64)

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(positive) per row of ``pairs``; an ``AdapterError`` if a score leaves [0, 1]."""
        scores = score_in_batches(self._score_pairs, pairs, source=self.name, batch_size=self.batch_size)
        return check_probabilities(scores, len(pairs), source=self.name)
