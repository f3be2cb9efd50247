"""Evaluation policies for off-policy estimation, built from a model's scores.

Each policy implements ``harness.types.Policy`` (``action_probabilities(contexts,
actions)``) and gives the sparse inputs of the estimators in batches, so that memory
stays O(batch * n_actions * len_list) whatever the number of logged rows:

- ``action_probabilities(contexts, actions, positions)``: pi_e of the logged action at
  the logged position, ``pi_e[n]``;
- ``expected_reward(contexts, q_hat, positions)``: ``v_hat[n] = sum_a pi_e(a | x, pos)
  q_hat(x, a, pos)``.

Scores come either as a table ``scores[n_contexts, n_actions]`` indexed by integer
context ids, or as a callable ``scores(contexts) -> (batch, n_actions)``.
Distributions are ``(batch, n_actions, len_list)``: position ``p`` of a ranking policy
is its p-th slot (OBP's ``action_dist``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Union

import numpy as np

from harness.types import check_probabilities
from harness.errors import AdapterError, DataValidationError

__all__ = ["EpsilonGreedyPolicy", "PlackettLucePolicy", "ProbabilityTablePolicy", "SoftmaxPolicy", "TopKPolicy"]

Scores = Union[np.ndarray, Callable[[np.ndarray], np.ndarray]]
QHat = Union[np.ndarray, Callable[[np.ndarray], np.ndarray]]
BATCH = 65_536
TABLE_CELLS = 1 << 25


def _rows(source: Any, contexts: np.ndarray, name: str) -> np.ndarray:
    """Rows of a table (integer context ids) or the output of a callable."""
    if callable(source):
        out = np.asarray(source(contexts), dtype=np.float64)
        if out.shape[0] != len(contexts):
            raise AdapterError(f"{name}: callable returned {out.shape[0]} rows for {len(contexts)} contexts")
        return out
    return source[_check_ids(contexts, source.shape[0])]


def _check_ids(contexts: np.ndarray, n_contexts: int) -> np.ndarray:
    ids = np.asarray(contexts)
    if ids.dtype.kind not in "iu" or ((ids < 0) | (ids >= n_contexts)).any():
        raise DataValidationError(f"contexts must be integer ids in [0, {n_contexts - 1}] "
                                  f"for a table of {n_contexts} contexts")
    return ids


class _BatchedPolicy:
    """Batched evaluation of ``distribution`` (subclasses define it)."""

    len_list: int
    batch_size: int

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _source(self) -> Any:
        raise NotImplementedError

    def _context_table(self) -> np.ndarray | None:
        """The whole (n_contexts, n_actions, len_list) table when the policy is defined by
        a table of at most ``TABLE_CELLS`` cells: computed once, then each logged row is a
        gather, O(n) instead of O(n * n_actions)."""
        source = self._source()
        if callable(source):
            return None
        cache = self.__dict__.setdefault("_table_cache", {})
        if "table" not in cache:
            n_ctx, n_act = source.shape[0], source.shape[1]
            fits = n_ctx * n_act * self.len_list <= TABLE_CELLS
            cache["table"] = self.distribution(np.arange(n_ctx)) if fits else None
        return cache["table"]

    def _positions(self, positions: np.ndarray | None, n: int) -> np.ndarray:
        if positions is None:
            return np.zeros(n, dtype=np.int64)
        pos = np.asarray(positions)
        if pos.shape != (n,) or pos.dtype.kind not in "iu" or ((pos < 0) | (pos >= self.len_list)).any():
            raise DataValidationError(f"positions: expected {n} integers in [0, {self.len_list - 1}]")
        return pos

    def distribution_at(self, contexts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """``pi(. | contexts[i], positions[i])`` as (batch, n_actions)."""
        dist = self.distribution(contexts)
        return dist[np.arange(len(positions)), :, positions]

    def _gather(self, contexts: np.ndarray, positions: np.ndarray | None,
                pick: Callable[[np.ndarray, slice, np.ndarray], np.ndarray]) -> np.ndarray:
        n = len(contexts)
        pos = self._positions(positions, n)
        out = np.empty(n)
        for start in range(0, n, self.batch_size):
            sl = slice(start, min(n, start + self.batch_size))
            out[sl] = pick(self.distribution_at(contexts[sl], pos[sl]), sl, pos[sl])
        return out

    def action_probabilities(self, contexts: np.ndarray, actions: np.ndarray,
                             positions: np.ndarray | None = None) -> np.ndarray:
        """``pi_e(actions[i] | contexts[i], positions[i])`` for each logged row."""
        acts = np.asarray(actions)
        if acts.shape != (len(contexts),) or acts.dtype.kind not in "iu":
            raise DataValidationError(f"actions: expected {len(contexts)} integer ids, got shape {acts.shape}")

        def pick(dist: np.ndarray, sl: slice, pos: np.ndarray) -> np.ndarray:
            a = acts[sl]
            if ((a < 0) | (a >= dist.shape[1])).any():
                raise DataValidationError(f"actions: ids outside [0, {dist.shape[1] - 1}]")
            return dist[np.arange(len(a)), a]

        table = self._context_table()
        if table is not None:
            ctx = _check_ids(contexts, table.shape[0])
            if ((acts < 0) | (acts >= table.shape[1])).any():
                raise DataValidationError(f"actions: ids outside [0, {table.shape[1] - 1}]")
            probs = table[ctx, acts, self._positions(positions, len(ctx))]
        else:
            probs = self._gather(contexts, positions, pick)
        return check_probabilities(probs, len(contexts), source=type(self).__name__)

    def expected_reward(self, contexts: np.ndarray, q_hat: QHat,
                        positions: np.ndarray | None = None) -> np.ndarray:
        """``v_hat[i] = sum_a pi_e(a | x_i, pos_i) q_hat(x_i, a, pos_i)``.

        ``q_hat`` is a table ``(n_contexts, n_actions[, len_list])`` indexed by context
        id, or a callable returning ``(batch, n_actions[, len_list])``.
        """
        def pick(dist: np.ndarray, sl: slice, pos: np.ndarray) -> np.ndarray:
            q = _rows(q_hat, contexts[sl], "q_hat")
            if q.ndim == 2:
                q = q[:, :, None]
            if q.shape[:2] != dist.shape[:2]:
                raise DataValidationError(f"q_hat: {q.shape[1]} actions, policy has {dist.shape[1]}")
            q_pos = q[np.arange(len(pos)), :, pos if q.shape[2] > 1 else 0]
            return np.einsum("ij,ij->i", dist, q_pos)

        table = self._context_table()
        if table is not None and not callable(q_hat):
            q = np.asarray(q_hat, dtype=np.float64)
            q = q[:, :, None] if q.ndim == 2 else q
            if q.ndim != 3 or q.shape[:2] != table.shape[:2] or q.shape[2] not in (1, table.shape[2]):
                raise DataValidationError(f"q_hat: expected shape {table.shape[:2]} (+ len_list), got {q.shape}")
            v_table = np.einsum("xap,xap->xp", table, np.broadcast_to(q, table.shape))
            ctx = _check_ids(contexts, table.shape[0])
            return v_table[ctx, self._positions(positions, len(ctx))]
        return self._gather(contexts, positions, pick)

    def unsupported_mass(self, contexts: np.ndarray, logging_policy: "_BatchedPolicy",
                         positions: np.ndarray | None = None) -> np.ndarray:
        """Per row, this policy's mass on actions the logging policy never takes:
        ``sum_a pi_e(a | x_i, pos_i) 1{pi_b(a | x_i, pos_i) = 0}`` (support deficiency;
        input of ``harness.metrics.weight_diagnostics``), in batches."""
        n = len(contexts)
        pos = self._positions(positions, n)
        out = np.empty(n)
        for start in range(0, n, self.batch_size):
            sl = slice(start, min(n, start + self.batch_size))
            e = self.distribution_at(contexts[sl], pos[sl])
            b = logging_policy.distribution_at(contexts[sl], pos[sl])
            if e.shape != b.shape:
                raise DataValidationError(f"logging_policy: {b.shape[1]} actions, this policy {e.shape[1]}")
            out[sl] = np.where(b == 0, e, 0.0).sum(axis=1)
        return out


def _check_len_list(len_list: int, n_actions: int | None = None) -> None:
    if not isinstance(len_list, int) or len_list < 1 or (n_actions is not None and len_list > n_actions):
        raise DataValidationError(f"len_list must be an integer in [1, n_actions], got {len_list!r}")


@dataclass
class TopKPolicy(_BatchedPolicy):
    """Deterministic ranking: position p holds the p-th highest-scoring action.

    Ties are broken by action id ascending (the harness's ranking default):
    ``pi(a | x, p) = 1{a = argsort(-scores[x])[p]}``.
    """

    scores: Scores
    len_list: int = 1
    batch_size: int = BATCH

    def __post_init__(self) -> None:
        _check_len_list(self.len_list)

    def _source(self) -> Any:
        return self.scores

    def _top(self, contexts: np.ndarray) -> tuple[np.ndarray, int]:
        s = _rows(self.scores, contexts, "scores")
        if s.ndim != 2 or s.shape[1] < self.len_list or np.isnan(s).any():
            raise AdapterError(f"scores: expected (batch, n_actions >= {self.len_list}) without NaN, got {s.shape}")
        return np.argsort(-s, axis=1, kind="stable")[:, : self.len_list], s.shape[1]

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        top, n_actions = self._top(contexts)
        dist = np.zeros((len(top), n_actions, self.len_list))
        rows = np.arange(len(top))[:, None]
        dist[rows, top, np.arange(self.len_list)] = 1.0
        return dist

    def distribution_at(self, contexts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        top, n_actions = self._top(contexts)
        rows = np.arange(len(top))
        dist = np.zeros((len(top), n_actions))
        dist[rows, top[rows, positions]] = 1.0
        return dist


@dataclass
class EpsilonGreedyPolicy(TopKPolicy):
    """``pi(a | x, p) = (1 - epsilon) 1{a = top_p(x)} + epsilon / n_actions``."""

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.epsilon <= 1.0:
            raise DataValidationError(f"epsilon must be in [0, 1], got {self.epsilon!r}")

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        greedy = super().distribution(contexts)
        return (1.0 - self.epsilon) * greedy + self.epsilon / greedy.shape[1]

    def distribution_at(self, contexts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        greedy = super().distribution_at(contexts, positions)
        return (1.0 - self.epsilon) * greedy + self.epsilon / greedy.shape[1]


@dataclass
class _TemperedScores:
    """The parameters of the policies that draw from ``exp(s / T)``, checked once."""

    scores: Scores
    temperature: float = 1.0
    len_list: int = 1
    batch_size: int = BATCH

    def __post_init__(self) -> None:
        _check_len_list(self.len_list)
        if not self.temperature > 0:
            raise DataValidationError(f"temperature must be > 0, got {self.temperature!r}")


@dataclass
class SoftmaxPolicy(_TemperedScores, _BatchedPolicy):
    """``pi(a | x) = exp(s_a / T) / sum_b exp(s_b / T)`` at every position."""

    def _source(self) -> Any:
        return self.scores

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        return np.repeat(self._probs(contexts)[:, :, None], self.len_list, axis=2)

    def distribution_at(self, contexts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return self._probs(contexts)

    def _probs(self, contexts: np.ndarray) -> np.ndarray:
        s = _rows(self.scores, contexts, "scores") / self.temperature
        z = np.exp(s - s.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


@dataclass
class ProbabilityTablePolicy(_BatchedPolicy):
    """An explicit table ``pi[n_contexts, n_actions]`` or ``pi[n_contexts, n_actions, len_list]``."""

    table: np.ndarray
    batch_size: int = BATCH
    atol: float = 1e-8

    def __post_init__(self) -> None:
        t = np.asarray(self.table, dtype=np.float64)
        if t.ndim == 2:
            t = t[:, :, None]
        if t.ndim != 3:
            raise DataValidationError(f"table: expected 2-D or 3-D, got shape {t.shape}")
        if not ((t >= 0) & (t <= 1)).all():
            raise DataValidationError(f"table: {int((~((t >= 0) & (t <= 1))).sum())} entries outside [0, 1] or NaN")
        off = np.abs(t.sum(axis=1) - 1.0) > self.atol
        if off.any():
            raise DataValidationError(f"table: {int(off.sum())} (context, position) rows do not sum to 1")
        self.table = t
        self.len_list = t.shape[2]

    def _source(self) -> Any:
        return self.table

    def distribution(self, contexts: np.ndarray) -> np.ndarray:
        return _rows(self.table, contexts, "table")


@dataclass
class PlackettLucePolicy(_TemperedScores):
    """A stochastic top-k slate from a model's scores: position by position, the next item
    is drawn from the items not yet placed with probability proportional to
    ``exp(s_a / T)`` (the Plackett-Luce position model).

    ``pi(a_k | x, a_1..a_{k-1}) = exp(s_{a_k} / T) / sum_{b not in a_1..a_{k-1}} exp(s_b / T)``

    The slate estimators of ``harness.metrics.slate`` take, per logged slot, the cascade
    propensity (product of the conditionals down to the slot: RIPS) and the joint one
    (the whole slate: SIPS) -- ``slate_propensities``. With ``len_list=1`` this is
    ``SoftmaxPolicy``. As ``T -> 0`` it becomes ``TopKPolicy``'s ranking.

    Parameters
    ----------
    scores : ndarray (n_contexts, n_actions) or callable
        A table indexed by context id, or ``scores(contexts) -> (batch, n_actions)``.
    temperature : float, default 1.0
    len_list : int, default 1
        Slate length K <= n_actions.
    batch_size : int

    References
    ----------
    Plackett, "The analysis of permutations", JRSS C 1975; Luce, "Individual choice
    behavior", 1959. McInerney et al., KDD 2020 (RIPS).
    """

    def _logits(self, contexts: np.ndarray) -> np.ndarray:
        s = _rows(self.scores, contexts, "scores")
        if s.ndim != 2 or s.shape[1] < self.len_list or not np.isfinite(s).all():
            raise AdapterError(f"scores: expected finite (batch, n_actions >= {self.len_list}), got {s.shape}")
        return s / self.temperature

    def _check_slates(self, slates: np.ndarray, n: int, n_actions: int) -> np.ndarray:
        a = np.asarray(slates)
        if a.shape != (n, self.len_list) or a.dtype.kind not in "iu":
            raise DataValidationError(f"slates: expected integer actions of shape ({n}, {self.len_list}), got "
                                      f"{a.shape} {a.dtype}")
        if ((a < 0) | (a >= n_actions)).any():
            raise DataValidationError(f"slates: actions outside [0, {n_actions - 1}]")
        srt = np.sort(a, axis=1)
        rep = (srt[:, 1:] == srt[:, :-1]).any(axis=1)
        if rep.any():
            raise DataValidationError(f"slates: {int(rep.sum())} slates repeat an action "
                                      f"(e.g. row {int(np.argmax(rep))}); a ranking places each item once")
        return a

    def slot_conditionals(self, contexts: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """``pi(a_k | x, a_1..a_{k-1})`` of each slot of each logged slate, (n, K)."""
        contexts = np.asarray(contexts)
        n = len(contexts)
        out = np.empty((n, self.len_list))
        for start in range(0, n, self.batch_size):
            sl = slice(start, min(n, start + self.batch_size))
            z = self._logits(contexts[sl])
            a = self._check_slates(np.asarray(slates)[sl], z.shape[0], z.shape[1])
            rows = np.arange(len(a))[:, None]
            placed = z[rows, a]                                       # (b, K) logits of the slate's items
            z[rows, a] = -np.inf
            top = z.max(axis=1)
            finite = np.isfinite(top)                                 # K = n_actions leaves no other item
            rest = np.full(len(a), -np.inf)
            rest[finite] = top[finite] + np.log(np.exp(z[finite] - top[finite, None]).sum(axis=1))
            # log of the weight still available at slot k: the rest plus the slate's items
            # from k on, in log space (no underflow at low temperatures)
            tail = np.logaddexp.accumulate(placed[:, ::-1], axis=1)[:, ::-1]
            out[sl] = np.exp(placed - np.logaddexp(rest[:, None], tail))
        return out

    def slate_propensities(self, contexts: np.ndarray, slates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(cascade, joint)``, each (n, K): the product of the conditionals down to each
        slot, and over the whole slate (constant along a row)."""
        cascade = np.cumprod(self.slot_conditionals(contexts, slates), axis=1)
        return cascade, np.repeat(cascade[:, -1:], self.len_list, axis=1)

    def sample(self, contexts: np.ndarray, *, seed: int) -> np.ndarray:
        """One slate per context, (n, K), drawn by the Gumbel-top-k trick (exactly
        Plackett-Luce sampling without replacement)."""
        rng = np.random.default_rng(seed)
        contexts = np.asarray(contexts)
        out = np.empty((len(contexts), self.len_list), dtype=np.int64)
        for start in range(0, len(contexts), self.batch_size):
            sl = slice(start, min(len(contexts), start + self.batch_size))
            z = self._logits(contexts[sl])
            g = z + rng.gumbel(size=z.shape)
            top = np.argpartition(-g, self.len_list - 1, axis=1)[:, : self.len_list]
            order = np.argsort(-np.take_along_axis(g, top, axis=1), axis=1, kind="stable")
            out[sl] = np.take_along_axis(top, order, axis=1)
        return out
