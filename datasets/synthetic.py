"""A seeded synthetic world with known truth: latent factors -> exact graded relevance.

Users and items have latent factors; an item also has a popularity bias. The true
affinity of user u for item i is ``a[u, i] = <U_u, V_i> + b_i``. Graded relevance is a
deterministic function of the affinity (global quantiles), so a model that scores by
the true affinity is the ideal ranker, and tests can check metrics against truth.
Training interactions are drawn without replacement with probability proportional to
``exp(a / temperature)`` (Gumbel top-k), so popularity and affinity both leave a
signal that models can learn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.errors import ConfigError

from .base import InteractionDataset
from .synthetic_clicks import click_probabilities

# quantiles of the affinity above which an item has relevance 1, 2, 3
RELEVANCE_QUANTILES = (0.90, 0.96, 0.99)


def sample_without_replacement(logits: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Per row, ``n`` distinct columns drawn one after another with probability
    ``softmax(logits)`` over the columns not drawn yet (Gumbel top-k: the ``n`` largest
    ``logits + Gumbel noise``; Kool et al., ICML 2019). Returns ``(rows, n)`` in draw order."""
    gumbel = rng.gumbel(size=logits.shape)
    return np.argsort(-(logits + gumbel), axis=1)[:, :n]


def make_synthetic(
    *,
    n_users: int = 1000,
    n_items: int = 500,
    dim: int = 16,
    n_train_per_user: int = 20,
    popularity_strength: float = 0.5,
    temperature: float = 0.5,
    seed: int = 0,
) -> InteractionDataset:
    """Generate a synthetic interaction data set with exact graded relevance.

    Parameters
    ----------
    n_users, n_items, dim : int
        World size and latent dimension.
    n_train_per_user : int
        Training interactions per user (held out from the judgments).
    popularity_strength : float
        Standard deviation of the item bias ``b_i``.
    temperature : float
        Softness of the training-interaction sampling; lower is closer to the truth.
    seed : int
        Seed of everything random here.

    Returns
    -------
    InteractionDataset
        ``qrels`` holds every unseen item with relevance >= 1; ``truth`` holds
        ``true_scores`` (the affinity), ``true_relevance`` and ``true_click_prob`` (the
        exact click probability of every pair under the default click model of
        ``harness.datasets.synthetic_clicks``), each (n_users, n_items).
    """
    for name, value in {"n_users": n_users, "n_items": n_items, "dim": dim}.items():
        if value < 1:
            raise ConfigError(f"synthetic dataset: {name} must be >= 1, got {value}")
    if not 0 <= n_train_per_user < n_items:
        raise ConfigError(f"synthetic dataset: n_train_per_user must be in [0, n_items={n_items}), "
                          f"got {n_train_per_user}")
    if temperature <= 0:
        raise ConfigError(f"synthetic dataset: temperature must be > 0, got {temperature}")
    rng = np.random.default_rng(seed)
    users = rng.normal(0.0, 1.0 / np.sqrt(np.sqrt(dim)), size=(n_users, dim))
    items = rng.normal(0.0, 1.0 / np.sqrt(np.sqrt(dim)), size=(n_items, dim))
    bias = rng.normal(0.0, popularity_strength, size=n_items)
    affinity = users @ items.T + bias
    cuts = np.quantile(affinity, RELEVANCE_QUANTILES)
    relevance = np.searchsorted(cuts, affinity, side="right").astype(np.int64)

    seen = sample_without_replacement(affinity / temperature, n_train_per_user, rng)
    train = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(n_users, dtype=np.int64), n_train_per_user),
            "item_id": seen.ravel().astype(np.int64),
        }
    )
    judged = relevance > 0
    judged[np.arange(n_users)[:, None], seen] = False
    uq, iq = np.nonzero(judged)
    qrels = pd.DataFrame({"query_id": uq.astype(np.int64), "item_id": iq.astype(np.int64),
                          "relevance": relevance[uq, iq]})
    settings = {"kind": "synthetic", "n_users": n_users, "n_items": n_items, "dim": dim,
                "n_train_per_user": n_train_per_user, "popularity_strength": popularity_strength,
                "temperature": temperature, "seed": seed}
    return InteractionDataset(
        name=f"synthetic-{n_users}x{n_items}",
        train=train,
        qrels=qrels,
        n_users=n_users,
        n_items=n_items,
        settings=settings,
        truth={"true_scores": affinity, "true_relevance": relevance,
               "true_click_prob": click_probabilities(affinity)},
    )
