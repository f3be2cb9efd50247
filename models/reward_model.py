"""Cross-fitted reward models q_hat(x, a, pos) for the model-based off-policy estimators.

``fit_reward_model(feedback, model, n_folds=K, seed=s)`` splits the logged rows into K
folds and, for each fold and position, fits a clone of ``model`` (any scikit-learn or
XGBoost regressor or binary classifier) on the other folds' rows of that position, as
OBP's ``RegressionModel`` does (features: context, then the action's features --
one-hot by default -- and one model per position). Each row's ``q_hat`` comes from a
model that did not see it, which keeps DR's correction term unbiased (Chernozhukov et
al., "Double/debiased machine learning", Econometrics Journal 2018).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold

from harness.errors import AdapterError, DataValidationError

__all__ = ["RewardModelFit", "fit_reward_model"]

_FEEDBACK_FIELDS = ("action", "reward", "positions", "len_list", "n_actions", "context", "context_id",
                    "action_context")


def _predict(model: Any, X: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        if proba.ndim != 2 or proba.shape[1] != 2:
            raise AdapterError(f"reward model: predict_proba must give 2 classes, got shape {proba.shape}")
        return proba[:, 1]
    return np.asarray(model.predict(X), dtype=np.float64)


@dataclass
class RewardModelFit:
    """Fitted fold models and the cross-fitted predictions at the logged actions.

    Attributes
    ----------
    q_hat : ndarray of shape (n,)
        ``q_hat(x_i, a_i, pos_i)`` from the model of the fold that left row i out.
    fold : ndarray of int, shape (n,)
    models : list of list
        ``models[fold][position]``.
    """

    feedback: Any  # harness.datasets.LoggedFeedback
    q_hat: np.ndarray
    fold: np.ndarray
    models: list[list[Any]] = field(repr=False)

    def _features(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return _design(self.feedback, rows, actions)

    def predict(self, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Cross-fitted ``q_hat`` of logged rows ``rows`` (their context and position)
        for other ``actions`` (same length)."""
        rows = np.asarray(rows)
        out = np.empty(len(rows))
        fold, pos = self.fold[rows], self.feedback.positions[rows]
        for f, per_pos in enumerate(self.models):
            for p, model in enumerate(per_pos):
                sel = np.nonzero((fold == f) & (pos == p))[0]
                if sel.size:
                    out[sel] = _predict(model, self._features(rows[sel], actions[sel]))
        return out

    def expected_reward(self, policy: Any, *, contexts: np.ndarray | None = None,
                        batch_size: int = 8192) -> np.ndarray:
        """Cross-fitted ``v_hat[i] = sum_a pi_e(a | x_i, pos_i) q_hat(x_i, a, pos_i)``.

        ``policy.distribution_at(contexts[rows], positions[rows])`` is called
        ``batch_size`` rows at a time (memory O(batch_size * n_actions)); ``contexts``
        defaults to the feedback's ``context_id``, else its ``context`` features.
        """
        fb = self.feedback
        n, n_actions = len(fb), fb.n_actions
        if contexts is None:
            contexts = fb.context_id if fb.context_id is not None else fb.context
        if contexts is None or len(contexts) != n:
            raise DataValidationError(f"contexts: need one per logged row ({n}); the feedback has no "
                                      f"context_id or context features")
        out = np.empty(n)
        for start in range(0, n, batch_size):
            rows = np.arange(start, min(n, start + batch_size))
            pi = policy.distribution_at(contexts[rows], fb.positions[rows])
            q = self.predict(np.repeat(rows, n_actions), np.tile(np.arange(n_actions), len(rows)))
            out[rows] = np.einsum("ij,ij->i", pi, q.reshape(len(rows), n_actions))
        return out


def _design(fb: Any, rows: np.ndarray, actions: np.ndarray) -> np.ndarray:
    """OBP's design matrix: context features, then the action's features."""
    action_ctx = fb.action_context if fb.action_context is not None else np.eye(fb.n_actions)
    parts = [fb.context[rows]] if fb.context is not None else []
    parts.append(action_ctx[actions])
    return np.hstack(parts)


def fit_reward_model(feedback: Any, model: Any, *, n_folds: int = 3,
                     seed: int = 0) -> RewardModelFit:
    """Fit ``model`` clones by K-fold cross-fitting, one per (fold, position).

    Parameters
    ----------
    feedback : LoggedFeedback
        Needs ``context`` features (or relies on the action features alone).
    model : scikit-learn / XGBoost estimator
        A regressor (``predict``) or a binary classifier (``predict_proba``); cloned.
    n_folds : int, default 3
        K >= 2. Folds are a shuffled ``KFold`` with ``random_state=seed``.
    seed : int, default 0

    Returns
    -------
    RewardModelFit
    """
    missing = [a for a in _FEEDBACK_FIELDS if not hasattr(feedback, a)]
    if missing:  # duck-typed: models/ does not import harness.datasets
        raise DataValidationError(f"feedback must be a LoggedFeedback (harness.datasets); "
                                  f"{type(feedback).__name__} lacks {missing}")
    n = len(feedback)
    if not isinstance(n_folds, int) or not 2 <= n_folds <= n:
        raise DataValidationError(f"n_folds must be an integer in [2, {n}] (rows), got {n_folds!r}")
    if not (hasattr(model, "fit") and (hasattr(model, "predict") or hasattr(model, "predict_proba"))):
        raise AdapterError(f"reward model {type(model).__name__} needs fit and predict / predict_proba")
    fold = np.empty(n, dtype=np.int64)
    for f, (_, test) in enumerate(KFold(n_folds, shuffle=True, random_state=seed).split(np.arange(n))):
        fold[test] = f
    pos = feedback.positions
    models: list[list[Any]] = []
    for f in range(n_folds):
        per_pos = []
        for p in range(feedback.len_list):
            train = np.nonzero((fold != f) & (pos == p))[0]
            if train.size == 0:
                raise DataValidationError(f"fold {f}, position {p}: no training rows")
            fitted = clone(model)
            fitted.fit(_design(feedback, train, feedback.action[train]), feedback.reward[train])
            per_pos.append(fitted)
        models.append(per_pos)
    fit = RewardModelFit(feedback, np.empty(n), fold, models)
    fit.q_hat = fit.predict(np.arange(n), feedback.action)
    return fit
