"""Slate (ranking) off-policy estimators: SIPS, IIPS and RIPS.

A logged slate shows ``len_list`` items; each row of the input is one slot ``(slate_id,
position, reward)`` with the logging and evaluation policies' probability of what was
shown, at one of three granularities. All three estimate the expected SUM of rewards
over a slate's slots:

    V = (1 / n_slates) * sum_rows w_row r_row,    w_row = pi_e_row / pscore_row

and differ only in the propensities (OBP's ``obp.ope.estimators_slate``):

- SIPS (``SlateStandardIPS``): the probability of the whole slate (constant within a
  slate). Unbiased in general, high variance.
- IIPS (``SlateIndependentIPS``): the marginal probability of the item at that
  position. Unbiased when each slot's reward depends only on its own item.
- RIPS (``SlateRewardInteractionIPS``): the probability of the items from the top
  down to that position (non-increasing along the slate). Unbiased under the cascade
  assumption.

The unit of every interval is the slate: per-slate sums of ``w r`` are its columns.

References
----------
Li, Kim & Zitouni, "Offline evaluation of ranking policies with click models", KDD 2018
(IIPS). McInerney et al., "Counterfactual evaluation of slate recommendations with
sequential reward interactions", KDD 2020 (RIPS). Swaminathan et al., "Off-policy
evaluation for slate recommendation", NeurIPS 2017.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from harness.errors import DataValidationError, describe_examples

from ._ope_inputs import _column, check_finite, check_propensities
from .off_policy import OffPolicyEstimator

__all__ = ["SlateIndependentIPS", "SlateInputs", "SlateRewardInteractionIPS", "SlateStandardIPS",
           "slate_pscores"]


def _group_codes(slate_id: Any, position: Any, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slate codes, positions, order sorted by (slate, position)); duplicates refused."""
    sid = np.asarray(slate_id)
    pos = np.asarray(position)
    if sid.shape != (n,) or pos.shape != (n,):
        raise DataValidationError(f"slate_id and position: expected shape ({n},), got {sid.shape} and {pos.shape}")
    if pos.dtype.kind not in "iu" or (pos < 0).any():
        raise DataValidationError(f"position: expected non-negative integers, got dtype {pos.dtype} "
                                  f"({describe_examples(pos[pos < 0]) if pos.dtype.kind in 'iu' else ''})")
    _, codes = np.unique(sid, return_inverse=True)
    order = np.lexsort((pos, codes))
    dup = (np.diff(codes[order]) == 0) & (np.diff(pos[order]) == 0)
    if dup.any():
        raise DataValidationError(f"slate_id/position: {int(dup.sum())} duplicate (slate, position) rows "
                                  f"({describe_examples(sid[order][1:][dup])})")
    return codes.astype(np.int64), pos.astype(np.int64), order


@dataclass(frozen=True)
class SlateInputs:
    """Logged slots of slates with one kind of logging / evaluation propensity.

    Parameters
    ----------
    slate_id : ndarray of shape (n,)
        Slate of each slot (any sortable ids).
    position : ndarray of int, shape (n,)
        0-based slot position; ``< len_list`` when ``len_list`` is given.
    reward : ndarray of shape (n,)
    pscore : ndarray of shape (n,)
        Logging propensity of the slot, in (0, 1] (joint, marginal or cascade).
    pi_e : ndarray of shape (n,)
        Evaluation policy's propensity of the same kind, in [0, 1].
    len_list : int, optional
        Slate length, for the position range check.
    """

    slate_id: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    pi_e: np.ndarray
    len_list: int | None = None

    def __post_init__(self) -> None:
        reward = _column(self.reward, "reward", None)
        n = reward.shape[0]
        if n == 0:
            raise DataValidationError("reward: no logged slots (length 0)")
        check_finite(reward, "reward")
        pi_e, pscore = check_propensities(self.pi_e, self.pscore, n=n)
        codes, pos, order = _group_codes(self.slate_id, self.position, n)
        if self.len_list is not None and (pos >= self.len_list).any():
            bad = pos[pos >= self.len_list]
            raise DataValidationError(f"position: {bad.size} of {n} positions outside the slate "
                                      f"[0, {self.len_list - 1}] ({describe_examples(bad)})")
        for name, value in (("reward", reward), ("pscore", pscore), ("pi_e", pi_e), ("position", pos)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_codes", codes)
        object.__setattr__(self, "_order", order)

    @property
    def n_slates(self) -> int:
        return int(self._codes.max()) + 1  # type: ignore[attr-defined]

    def per_slate_sum(self, values: np.ndarray) -> np.ndarray:
        return np.bincount(self._codes, weights=values, minlength=self.n_slates)  # type: ignore[attr-defined]

    def check_constant_within_slate(self, name: str) -> None:
        """Joint propensities must be equal on every slot of a slate."""
        for label, arr in (("pscore", self.pscore), ("pi_e", self.pi_e)):
            lo = np.full(self.n_slates, np.inf)
            hi = np.full(self.n_slates, -np.inf)
            np.minimum.at(lo, self._codes, arr)  # type: ignore[attr-defined]
            np.maximum.at(hi, self._codes, arr)  # type: ignore[attr-defined]
            bad = hi - lo > 1e-12 * np.maximum(hi, 1.0)
            if bad.any():
                raise DataValidationError(f"{name}: {label} must be one slate-level probability per slate; "
                                          f"{int(bad.sum())} of {bad.size} slates have differing values")

    def check_nonincreasing_within_slate(self, name: str) -> None:
        """Cascade propensities cannot grow down the slate."""
        codes = self._codes[self._order]  # type: ignore[attr-defined]
        for label, arr in (("pscore", self.pscore), ("pi_e", self.pi_e)):
            sorted_arr = arr[self._order]  # type: ignore[attr-defined]
            rising = (np.diff(codes) == 0) & (np.diff(sorted_arr) > 1e-12)
            if rising.any():
                raise DataValidationError(f"{name}: cascade {label} must be non-increasing along positions; "
                                          f"{int(rising.sum())} slots increase")


class _SlateIPS(OffPolicyEstimator):
    """``V = E_slates[sum_{slots} (pi_e / pscore) r]``; units are slates."""

    def _check(self, data: SlateInputs) -> None:
        """Propensity-kind checks; none for item-position marginals."""

    def _columns(self, data: SlateInputs) -> np.ndarray:
        if not isinstance(data, SlateInputs):
            raise DataValidationError(f"{self.name} needs SlateInputs, got {type(data).__name__}")
        self._check(data)
        return data.per_slate_sum(data.pi_e / data.pscore * data.reward)[:, None]

    def per_slot_contributions(self, data: SlateInputs) -> np.ndarray:
        """OBP's per-slot round rewards ``w r`` (their sum / n_slates is the estimate)."""
        self._check(data)
        return data.pi_e / data.pscore * data.reward


@dataclass(frozen=True)
class SlateStandardIPS(_SlateIPS):
    """SIPS: slate-level propensities ``pscore = pi_b(slate | x)``, ``pi_e = pi_e(slate | x)``."""

    name: ClassVar[str] = "sips"

    def _check(self, data: SlateInputs) -> None:
        data.check_constant_within_slate(self.name)


@dataclass(frozen=True)
class SlateIndependentIPS(_SlateIPS):
    """IIPS: item-position marginals ``pscore = pi_b(a_k at k | x)``."""

    name: ClassVar[str] = "iips"


@dataclass(frozen=True)
class SlateRewardInteractionIPS(_SlateIPS):
    """RIPS: cascade propensities ``pscore = pi_b(a_1, ..., a_k | x)`` of the top k slots."""

    name: ClassVar[str] = "rips"

    def _check(self, data: SlateInputs) -> None:
        data.check_nonincreasing_within_slate(self.name)


def slate_pscores(slate_id: Any, position: Any, conditional: Any) -> tuple[np.ndarray, np.ndarray]:
    """Cascade and joint propensities from per-slot conditional probabilities.

    ``conditional[i] = pi(a_k | x, a_1..a_{k-1})`` for the slot at position k; the cascade
    propensity is the product over positions <= k of the same slate, the joint one the
    product over the whole slate. Every slate must hold positions 0..K-1.

    Returns
    -------
    (cascade, joint) : ndarrays of shape (n,), in the input's row order.
    """
    p = _column(conditional, "conditional", None)
    n = p.shape[0]
    bad = ~((p > 0) & (p <= 1))
    if n == 0 or bad.any():
        raise DataValidationError(f"conditional: {int(bad.sum())} of {n} values outside (0, 1] or NaN "
                                  f"({describe_examples(p[bad])})")
    codes, pos, order = _group_codes(slate_id, position, n)
    sc, sp = codes[order], pos[order]
    starts = np.r_[True, np.diff(sc) != 0]
    rank = np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    if (sp != rank).any():
        raise DataValidationError("position: every slate must hold positions 0..K-1 without gaps; "
                                  f"{int((sp != rank).sum())} slots do not")
    logs = np.log(p[order])
    csum = np.cumsum(logs)
    base = np.repeat(np.r_[0.0, csum][:-1][starts], np.diff(np.r_[np.nonzero(starts)[0], n]))
    cascade_sorted = np.exp(csum - base)
    ends = np.r_[np.nonzero(starts)[0][1:] - 1, n - 1]
    joint_sorted = np.repeat(cascade_sorted[ends], np.diff(np.r_[np.nonzero(starts)[0], n]))
    cascade, joint = np.empty(n), np.empty(n)
    cascade[order], joint[order] = cascade_sorted, joint_sorted
    return cascade, joint
