"""Validated, sparse inputs of the off-policy estimators.

The evaluation policy enters only through its probability of the logged action at the
logged position (``pi_e[n]``) and, for model-based estimators, the reward model's value
at the logged action (``q_hat[n]``) and under the policy (``v_hat[n] = sum_a
pi_e(a | x, pos) q_hat(x, a, pos)``). Memory is O(n) whatever the number of actions;
``OPEInputs.from_action_dist`` converts OBP's dense ``action_dist[n, n_actions,
len_list]`` for small action spaces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.errors import DataValidationError, describe_examples


def _column(values: Any, name: str, n: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataValidationError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataValidationError(f"{name}: length {arr.shape[0]} != {n} logged rows")
    if arr.dtype.kind not in "fiub":
        raise DataValidationError(f"{name}: expected numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def _check_range(arr: np.ndarray, name: str, *, low: float, high: float,
                 low_open: bool = False, what: str) -> None:
    ok = (arr > low if low_open else arr >= low) & (arr <= high)
    if not ok.all():
        bad = ~ok
        raise DataValidationError(f"{name}: {int(bad.sum())} of {arr.size} values outside {what} "
                                  f"or NaN ({describe_examples(arr[bad])})")


def check_finite(arr: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataValidationError(f"{name}: {int(bad.sum())} of {arr.size} values are NaN or "
                                  f"infinite ({describe_examples(arr[bad])})")


def check_propensities(pi_e: Any, pscore: Any, *, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validated float copies of ``pi_e`` (in [0, 1]) and ``pscore`` (in (0, 1]), length n."""
    pi_e_arr = _column(pi_e, "pi_e", n)
    if pi_e_arr.shape[0] == 0:
        raise DataValidationError("pi_e: no logged rows (length 0)")
    pscore_arr = _column(pscore, "pscore", pi_e_arr.shape[0])
    _check_range(pscore_arr, "pscore", low=0.0, high=1.0, low_open=True, what="(0, 1]")
    _check_range(pi_e_arr, "pi_e", low=0.0, high=1.0, what="[0, 1]")
    return pi_e_arr, pscore_arr


@dataclass(frozen=True)
class OPEInputs:
    """Logged rows with the evaluation policy's sparse view of them.

    Parameters
    ----------
    reward : ndarray of shape (n,)
        Observed reward of each logged row.
    pscore : ndarray of shape (n,)
        Logging propensity pi_b(a_i | x_i, pos_i), in (0, 1].
    pi_e : ndarray of shape (n,)
        Evaluation policy's probability of the logged action at the logged position, in [0, 1].
    q_hat : ndarray of shape (n,), optional
        Reward model's prediction q_hat(x_i, a_i, pos_i) for the logged action.
    v_hat : ndarray of shape (n,), optional
        Reward model's value under pi_e: sum_a pi_e(a | x_i, pos_i) q_hat(x_i, a, pos_i).
    nonnegative_reward : bool, default False
        Refuse negative rewards (clicks, conversions).
    action : ndarray of shape (n,), optional
        The logged action of each row (any labels), for the per-action overlap check
        of ``weight_diagnostics``.

    Raises
    ------
    DataValidationError
        Length mismatch, NaN or infinite values, pscore outside (0, 1], pi_e outside
        [0, 1], or negative rewards when ``nonnegative_reward``.
    """

    reward: np.ndarray
    pscore: np.ndarray
    pi_e: np.ndarray
    q_hat: np.ndarray | None = None
    v_hat: np.ndarray | None = None
    nonnegative_reward: bool = False
    action: np.ndarray | None = None

    def __post_init__(self) -> None:
        reward = _column(self.reward, "reward", None)
        n = reward.shape[0]
        if n == 0:
            raise DataValidationError("reward: no logged rows (length 0)")
        check_finite(reward, "reward")
        if self.nonnegative_reward and (reward < 0).any():
            raise DataValidationError(f"reward: {int((reward < 0).sum())} of {n} rewards are negative "
                                      f"({describe_examples(reward[reward < 0])})")
        pi_e, pscore = check_propensities(self.pi_e, self.pscore, n=n)
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "pscore", pscore)
        object.__setattr__(self, "pi_e", pi_e)
        for name in ("q_hat", "v_hat"):
            value = getattr(self, name)
            if value is not None:
                arr = _column(value, name, n)
                check_finite(arr, name)
                object.__setattr__(self, name, arr)
        if self.action is not None:
            act = np.asarray(self.action)
            if act.shape != (n,):
                raise DataValidationError(f"action: expected shape ({n},), got {act.shape}")
            object.__setattr__(self, "action", act)

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    @property
    def weight(self) -> np.ndarray:
        """Importance weights w_i = pi_e_i / pscore_i (unclipped)."""
        return self.pi_e / self.pscore

    def require_reward_model(self, estimator: str) -> tuple[np.ndarray, np.ndarray]:
        """``(q_hat, v_hat)``, or an error naming the estimator that needs them."""
        if self.q_hat is None or self.v_hat is None:
            missing = [k for k in ("q_hat", "v_hat") if getattr(self, k) is None]
            raise DataValidationError(f"{estimator} needs a reward model: missing {', '.join(missing)} "
                                      f"(see harness.models.reward_model.fit_reward_model)")
        return self.q_hat, self.v_hat

    @classmethod
    def from_action_dist(
        cls, *, reward: Any, action: Any, pscore: Any, action_dist: Any,
        position: Any = None, estimated_rewards: Any = None, atol: float = 1e-6,
        nonnegative_reward: bool = False,
    ) -> "OPEInputs":
        """Build sparse inputs from OBP's dense arrays (small action spaces only).

        ``pi_e = action_dist[i, a_i, pos_i]``; with ``estimated_rewards[n, n_actions,
        len_list]``, ``q_hat = estimated_rewards[i, a_i, pos_i]`` and ``v_hat`` is OBP's
        ``np.average(estimated_rewards[i, :, pos_i], weights=action_dist[i, :, pos_i])``.
        Each ``action_dist[i, :, pos]`` must sum to 1 within ``atol``.
        """
        dist = np.asarray(action_dist, dtype=np.float64)
        reward_arr = np.asarray(reward)
        n = reward_arr.shape[0] if reward_arr.ndim == 1 else -1
        if dist.ndim != 3 or dist.shape[0] != n:
            raise DataValidationError(f"action_dist: expected shape (n_rounds={n}, n_actions, len_list), "
                                      f"got {dist.shape}")
        n_actions, len_list = dist.shape[1], dist.shape[2]
        act = _index_column(action, "action", n, n_actions)
        pos = (np.zeros(n, dtype=np.int64) if position is None
               else _index_column(position, "position", n, len_list))
        _check_range(dist.ravel(), "action_dist", low=0.0, high=1.0, what="[0, 1]")
        totals = dist.sum(axis=1)
        off = np.abs(totals - 1.0) > atol
        if off.any():
            raise DataValidationError(f"action_dist: {int(off.sum())} (round, position) distributions "
                                      f"do not sum to 1 ({describe_examples(totals[off])})")
        rows = np.arange(n)
        q_hat = v_hat = None
        if estimated_rewards is not None:
            q = np.asarray(estimated_rewards, dtype=np.float64)
            if q.shape != dist.shape:
                raise DataValidationError(f"estimated_rewards: shape {q.shape} != action_dist shape {dist.shape}")
            q_hat = q[rows, act, pos]
            pi_at = dist[rows, :, pos]
            v_hat = np.einsum("ij,ij->i", pi_at, q[rows, :, pos]) / pi_at.sum(axis=1)
        return cls(reward=reward_arr, pscore=pscore, pi_e=dist[rows, act, pos], q_hat=q_hat,
                   v_hat=v_hat, nonnegative_reward=nonnegative_reward, action=act)


def _index_column(values: Any, name: str, n: int, size: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise DataValidationError(f"{name}: expected shape ({n},), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataValidationError(f"{name}: expected integer indices, got dtype {arr.dtype}")
    bad = (arr < 0) | (arr >= size)
    if bad.any():
        raise DataValidationError(f"{name}: {int(bad.sum())} of {n} values outside [0, {size - 1}] "
                                  f"({describe_examples(arr[bad])})")
    return arr.astype(np.int64, copy=False)
