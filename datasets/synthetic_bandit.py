"""Synthetic logged bandit feedback with exactly known policy values.

Contexts are drawn from a finite set with known probabilities, so every policy's value
is an exact finite sum rather than a Monte-Carlo estimate:

    V(pi) = sum_x p(x) (1 / L) sum_pos sum_a pi(a | x, pos) q(x, a, pos)

which is what the per-row off-policy estimators target when every round logs one
action at each of the L positions. Rewards are Bernoulli(q(x, a, pos)) with
``q = sigmoid(<u_x, v_a> + b_pos)``; the logging policy is a softmax of a noisy copy
of the true logits, so it covers every action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import DataValidationError

from .bandit import LoggedFeedback

__all__ = ["SyntheticBandit", "make_synthetic_bandit", "sample_from_tables"]


def _softmax(logits: np.ndarray, axis: int) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return z / z.sum(axis=axis, keepdims=True)


def sample_from_tables(table: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One draw per row from ``table[groups[i]]`` (rows of probabilities), by a single
    ``searchsorted`` on the flattened cumulative table: O(n log(G A)), no (n, A) array."""
    g, a = table.shape
    cdf = np.cumsum(table, axis=1)
    cdf[:, -1] = 1.0  # guard against rounding below 1
    flat = (cdf + np.arange(g)[:, None]).ravel()
    idx = np.searchsorted(flat, rng.random(groups.shape[0]) + groups, side="right")
    return np.minimum(idx - groups * a, a - 1)


@dataclass(frozen=True)
class SyntheticBandit:
    """A simulated logging run and the ground truth behind it.

    Attributes
    ----------
    feedback : LoggedFeedback
        ``n_rounds * len_list`` rows (round-major, positions 0..L-1 within a round).
    q_true : ndarray of shape (n_contexts, n_actions, len_list)
        Expected reward.
    pi_b : ndarray of shape (n_contexts, n_actions, len_list)
        Logging policy; ``feedback.pscore = pi_b[x, a, pos]``.
    context_prob : ndarray of shape (n_contexts,)
    context_features : ndarray of shape (n_contexts, dim)
    """

    feedback: LoggedFeedback
    q_true: np.ndarray
    pi_b: np.ndarray
    context_prob: np.ndarray
    context_features: np.ndarray

    def policy_value(self, pi_e: np.ndarray) -> float:
        """Exact value of the policy table ``pi_e[n_contexts, n_actions, len_list]``."""
        pi_e = self._check_table(pi_e, "pi_e")
        per_context = np.einsum("xap,xap->x", pi_e, self.q_true) / self.q_true.shape[2]
        return float(self.context_prob @ per_context)

    def sparse_policy(self, pi_e: np.ndarray, q_hat: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``pi_e`` at the logged (context, action, position) and, with a reward-model
        table ``q_hat``, ``q_hat`` there and ``v_hat = sum_a pi_e q_hat`` at the position:
        keyword arguments for ``harness.metrics.off_policy.OPEInputs``."""
        fb = self.feedback
        pi_e = self._check_table(pi_e, "pi_e")
        x, a, p = fb.context_id, fb.action, fb.positions
        out = {"pi_e": pi_e[x, a, p]}
        if q_hat is not None:
            q_hat = self._check_table(q_hat, "q_hat", probabilities=False)
            out["q_hat"] = q_hat[x, a, p]
            out["v_hat"] = np.einsum("xap,xap->xp", pi_e, q_hat)[x, p]
        return out

    def _check_table(self, table: np.ndarray, name: str, *, probabilities: bool = True) -> np.ndarray:
        arr = np.asarray(table, dtype=np.float64)
        if arr.shape != self.q_true.shape:
            raise DataValidationError(f"{name}: expected shape {self.q_true.shape}, got {arr.shape}")
        if probabilities and (np.abs(arr.sum(axis=1) - 1) > 1e-8).any():
            raise DataValidationError(f"{name}: each (context, position) distribution must sum to 1")
        return arr


def make_synthetic_bandit(
    n_rounds: int, *, n_actions: int = 10, len_list: int = 1, n_contexts: int = 50, dim: int = 5,
    behavior_temperature: float = 1.0, reward_scale: float = 1.0, seed: int = 0,
    structure_seed: int | None = None,
) -> SyntheticBandit:
    """Simulate ``n_rounds`` logged rounds of a softmax logging policy.

    Parameters
    ----------
    n_rounds : int
        Rounds; each logs one action at each of ``len_list`` positions.
    n_actions, len_list, n_contexts, dim : int
    behavior_temperature : float, default 1.0
        Softmax temperature of the logging policy (larger: closer to uniform).
    reward_scale : float, default 1.0
        Scale of the true logits (larger: more spread of q).
    seed : int
        Seed of the logged draws (contexts, actions, rewards).
    structure_seed : int, optional
        Seed of the world (q, pi_b, context probabilities); defaults to ``seed``. Fix it
        and vary ``seed`` for repeated logging runs of the same world.
    """
    for name, value in (("n_rounds", n_rounds), ("n_actions", n_actions), ("len_list", len_list),
                        ("n_contexts", n_contexts), ("dim", dim)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise DataValidationError(f"{name} must be a positive integer, got {value!r}")
    if not behavior_temperature > 0:
        raise DataValidationError(f"behavior_temperature must be > 0, got {behavior_temperature!r}")
    world = np.random.default_rng(seed if structure_seed is None else structure_seed)
    features = world.normal(size=(n_contexts, dim))
    emb = world.normal(size=(n_actions, dim)) / np.sqrt(dim)
    pos_bias = -0.5 * np.arange(len_list)
    logits = reward_scale * (features @ emb.T)[:, :, None] + pos_bias
    q_true = 1.0 / (1.0 + np.exp(-logits))
    noisy = logits + world.normal(scale=0.5, size=logits.shape)
    pi_b = _softmax(noisy / behavior_temperature, axis=1)
    context_prob = world.dirichlet(np.full(n_contexts, 2.0))

    rng = np.random.default_rng(seed)
    ctx = rng.choice(n_contexts, size=n_rounds, p=context_prob)
    x = np.repeat(ctx, len_list)
    pos = np.tile(np.arange(len_list), n_rounds)
    groups = x * len_list + pos
    action = sample_from_tables(pi_b.transpose(0, 2, 1).reshape(-1, n_actions), groups, rng)
    reward = (rng.random(x.shape[0]) < q_true[x, action, pos]).astype(np.float64)
    feedback = LoggedFeedback(
        action=action, reward=reward, pscore=pi_b[x, action, pos], n_actions=n_actions,
        context_id=x, context=features[x], position=pos if len_list > 1 else None,
        len_list=len_list, nonnegative_reward=True,
    )
    return SyntheticBandit(feedback, q_true, pi_b, context_prob, features)
