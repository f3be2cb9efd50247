"""Logged bandit feedback over a synthetic recommender world, with exact policy values.

Each round shows one item to a user drawn uniformly from the world's users. The logging
policy is a softmax over items of the log training popularity plus Gaussian noise (so
every item has support), at a given temperature; the reward is a click drawn from the
world's true click probability ``q[u, i]`` (``synthetic_clicks.click_probabilities``).
The exact value of any policy pi is ``V(pi) = mean_u sum_i pi(i | u) q[u, i]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError

from .bandit import LoggedFeedback
from .base import InteractionDataset
from .synthetic_bandit import sample_from_tables
from .synthetic_clicks import click_probabilities


@dataclass(frozen=True)
class SyntheticLogs:
    """Logged feedback (``context_id`` = user id, ``action`` = item id) and the truth."""

    feedback: LoggedFeedback
    click_prob: np.ndarray  # (n_users, n_items) true reward probabilities
    logging_policy: np.ndarray  # (n_users, n_items)

    def policy_value(self, pi: np.ndarray) -> float:
        """Exact value of a policy given as a (n_users, n_items) probability table."""
        return float((pi * self.click_prob).sum(axis=1).mean())

    def top1_value(self, top_items: np.ndarray) -> float:
        """Exact value of the deterministic policy showing ``top_items[u]`` to user u."""
        return float(self.click_prob[np.arange(len(top_items)), top_items].mean())


def make_logged_feedback(dataset: InteractionDataset, *, n_rounds: int = 20000, temperature: float = 1.0,
                         noise: float = 0.5, seed: int = 0) -> SyntheticLogs:
    """Simulate ``n_rounds`` logged impressions over ``dataset``'s users and items.

    Parameters
    ----------
    dataset : InteractionDataset
        A synthetic world (``truth["true_scores"]``).
    n_rounds : int
        Logged rows.
    temperature : float
        Softmax temperature of the logging policy; larger is closer to uniform (more
        overlap with any evaluation policy, so a larger effective sample size).
    noise : float
        Standard deviation of the per-(user, item) noise on the logging logits.
    seed : int
    """
    if "true_scores" not in dataset.truth:
        raise ConfigError("off_policy.synthetic: needs a synthetic dataset with known true scores")
    if n_rounds < 10 or temperature <= 0 or noise < 0:
        raise ConfigError(f"off_policy.synthetic: need n_rounds >= 10, temperature > 0, noise >= 0; "
                          f"got {n_rounds}, {temperature}, {noise}")
    rng = np.random.default_rng(seed)
    q = click_probabilities(dataset.truth["true_scores"])
    counts = np.bincount(dataset.train["item_id"].to_numpy(), minlength=dataset.n_items)
    logits = np.log1p(counts)[None, :] + rng.normal(0.0, noise, size=q.shape)
    z = np.exp((logits - logits.max(axis=1, keepdims=True)) / temperature)
    pi_b = z / z.sum(axis=1, keepdims=True)
    users = rng.integers(0, dataset.n_users, n_rounds)
    items = sample_from_tables(pi_b, users, rng)
    reward = (rng.random(n_rounds) < q[users, items]).astype(np.float64)
    feedback = LoggedFeedback(action=items, reward=reward, pscore=pi_b[users, items],
                              n_actions=dataset.n_items, context_id=users, nonnegative_reward=True)
    return SyntheticLogs(feedback, q, pi_b)
