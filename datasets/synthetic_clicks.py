"""Binary outcomes with known true probabilities for a synthetic world.

Calibration needs labels drawn from probabilities we know: a model that returns the
true probability is calibrated by construction, and any distortion of it is not.

The true click probability of user u on item i is a logistic function of the world's
true affinity ``a[u, i]`` (``dataset.truth["true_scores"]``), standardised over the
whole matrix::

    p[u, i] = sigmoid(scale * (a[u, i] - mean(a)) / std(a) + logit(base_rate))

so ``scale`` sets how much the affinity matters and ``base_rate`` the click rate of a
typical (u, i) pair. Impressions are ``n_per_user`` distinct items per user drawn
uniformly at random (a uniform logging policy, so every level of p is represented).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import ConfigError

from .base import InteractionDataset

CLICK_SCALE = 1.5
CLICK_BASE_RATE = 0.1


def click_probabilities(true_scores: np.ndarray, *, scale: float = CLICK_SCALE,
                        base_rate: float = CLICK_BASE_RATE) -> np.ndarray:
    """True click probability of every (user, item): see the module docstring."""
    if not 0 < base_rate < 1:
        raise ConfigError(f"click log: base_rate must be in (0, 1), got {base_rate!r}")
    if not np.isfinite(scale) or scale < 0:
        raise ConfigError(f"click log: scale must be a finite number >= 0, got {scale!r}")
    a = np.asarray(true_scores, dtype=np.float64)
    spread = a.std()
    z = (a - a.mean()) / spread if spread > 0 else np.zeros_like(a)
    return special.expit(scale * z + special.logit(base_rate))


def make_click_log(dataset: InteractionDataset, *, n_per_user: int = 20, scale: float = CLICK_SCALE,
                   base_rate: float = CLICK_BASE_RATE, seed: int = 0) -> pd.DataFrame:
    """Impressions with binary labels drawn from known true click probabilities.

    Parameters
    ----------
    dataset : InteractionDataset
        A synthetic world with ``truth["true_scores"]`` of shape (n_users, n_items).
    n_per_user : int
        Distinct items shown to each user (1 <= n_per_user <= n_items).
    scale, base_rate : float
        Shape of the true probability (see :func:`click_probabilities`).
    seed : int
        Seed of the impressions and the labels.

    Returns
    -------
    DataFrame with columns ``query_id`` (user), ``item_id``, ``label`` (0/1, int64) and
    ``true_p``, sorted by user then item; ``label ~ Bernoulli(true_p)`` independently.
    """
    if "true_scores" not in dataset.truth:
        raise ConfigError(f"click log: data set {dataset.name!r} has no known true scores "
                          "(only synthetic worlds do)")
    if not 1 <= n_per_user <= dataset.n_items:
        raise ConfigError(f"click log: n_per_user must be in [1, n_items={dataset.n_items}], got {n_per_user}")
    p_all = click_probabilities(dataset.truth["true_scores"], scale=scale, base_rate=base_rate)
    rng = np.random.default_rng(seed)
    keys = rng.random((dataset.n_users, dataset.n_items))
    shown = np.sort(np.argpartition(keys, n_per_user - 1, axis=1)[:, :n_per_user], axis=1)
    users = np.repeat(np.arange(dataset.n_users, dtype=np.int64), n_per_user)
    items = shown.ravel().astype(np.int64)
    true_p = p_all[users, items]
    labels = (rng.random(len(true_p)) < true_p).astype(np.int64)
    return pd.DataFrame({"query_id": users, "item_id": items, "label": labels, "true_p": true_p})
