"""Logged bandit feedback: the data model and the Open Bandit Dataset loader.

``LoggedFeedback`` holds one row per logged impression as NumPy columns: context (an
id and optional features), the action shown, its position (slates), the reward and
the logging propensity ``pscore``. Off-policy estimators read it through
``harness.metrics.off_policy.OPEInputs`` once the evaluation policy's probabilities
are known.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples

__all__ = ["LoggedFeedback", "load_open_bandit_dataset", "read_logged_feedback", "write_logged_feedback"]


def _int_column(values: Any, name: str, n: int, upper: int | None) -> np.ndarray:
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise DataValidationError(f"{name}: expected shape ({n},), got {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise DataValidationError(f"{name}: expected integer ids, got dtype {arr.dtype}")
    bad = (arr < 0) if upper is None else (arr < 0) | (arr >= upper)
    if bad.any():
        where = "negative" if upper is None else f"outside [0, {upper - 1}]"
        raise DataValidationError(f"{name}: {int(bad.sum())} of {n} values {where} ({describe_examples(arr[bad])})")
    return arr.astype(np.int64, copy=False)


@dataclass(frozen=True)
class LoggedFeedback:
    """Logged bandit feedback, one row per impression.

    Parameters
    ----------
    action : ndarray of int, shape (n,)
        Action (item) shown, in ``[0, n_actions)``.
    reward : ndarray of float, shape (n,)
        Observed reward; finite, and non-negative when ``nonnegative_reward``.
    pscore : ndarray of float, shape (n,)
        Logging propensity of the shown action at its position, in (0, 1].
    n_actions : int
    context_id : ndarray of int, shape (n,), optional
        Context (user / request) index, e.g. into a policy's probability table.
    context : ndarray of float, shape (n, d), optional
        Context features (one row per logged row).
    position : ndarray of int, shape (n,), optional
        0-based slot, in ``[0, len_list)``; None for single-action logs.
    len_list : int, default 1
    action_context : ndarray of shape (n_actions, d_a), optional
        Action (item) features.
    nonnegative_reward : bool, default False
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    n_actions: int
    context_id: np.ndarray | None = None
    context: np.ndarray | None = None
    position: np.ndarray | None = None
    len_list: int = 1
    action_context: np.ndarray | None = None
    nonnegative_reward: bool = False

    def __post_init__(self) -> None:
        reward = np.asarray(self.reward)
        if reward.ndim != 1 or reward.shape[0] == 0 or reward.dtype.kind not in "fiub":
            raise DataValidationError(f"reward: expected a non-empty 1-D numeric array, got shape "
                                      f"{reward.shape} dtype {reward.dtype}")
        reward = reward.astype(np.float64, copy=False)
        n = reward.shape[0]
        bad = ~np.isfinite(reward) | ((reward < 0) if self.nonnegative_reward else False)
        if np.any(bad):
            raise DataValidationError(f"reward: {int(np.sum(bad))} of {n} rewards are NaN, infinite"
                                      f"{' or negative' if self.nonnegative_reward else ''} "
                                      f"({describe_examples(reward[bad])})")
        if not isinstance(self.n_actions, (int, np.integer)) or self.n_actions < 1:
            raise DataValidationError(f"n_actions must be a positive integer, got {self.n_actions!r}")
        if not isinstance(self.len_list, (int, np.integer)) or self.len_list < 1:
            raise DataValidationError(f"len_list must be a positive integer, got {self.len_list!r}")
        pscore = np.asarray(self.pscore, dtype=np.float64)
        if pscore.shape != (n,):
            raise DataValidationError(f"pscore: length {pscore.shape} != {n} logged rows")
        bad = ~((pscore > 0) & (pscore <= 1))
        if bad.any():
            raise DataValidationError(f"pscore: {int(bad.sum())} of {n} propensities outside (0, 1] or NaN "
                                      f"({describe_examples(pscore[bad])})")
        fields: dict[str, Any] = {"reward": reward, "pscore": pscore,
                                  "action": _int_column(self.action, "action", n, int(self.n_actions))}
        if self.position is not None:
            fields["position"] = _int_column(self.position, "position", n, int(self.len_list))
        elif self.len_list != 1:
            raise DataValidationError(f"position is required when len_list={self.len_list} > 1")
        if self.context_id is not None:
            fields["context_id"] = _int_column(self.context_id, "context_id", n, None)
        if self.context is not None:
            ctx = np.asarray(self.context, dtype=np.float64)
            if ctx.ndim != 2 or ctx.shape[0] != n or not np.isfinite(ctx).all():
                raise DataValidationError(f"context: expected finite features of shape ({n}, d), got {ctx.shape}")
            fields["context"] = ctx
        if self.action_context is not None:
            act_ctx = np.asarray(self.action_context, dtype=np.float64)
            if act_ctx.ndim != 2 or act_ctx.shape[0] != self.n_actions:
                raise DataValidationError(f"action_context: expected shape ({self.n_actions}, d), got {act_ctx.shape}")
            fields["action_context"] = act_ctx
        for key, value in fields.items():
            object.__setattr__(self, key, value)

    def __len__(self) -> int:
        return int(self.reward.shape[0])

    @property
    def positions(self) -> np.ndarray:
        """Positions, zeros for single-action logs."""
        return self.position if self.position is not None else np.zeros(len(self), dtype=np.int64)

    def take(self, rows: np.ndarray) -> "LoggedFeedback":
        """The subset of rows ``rows`` (indices or a boolean mask)."""
        pick = {k: (v[rows] if v is not None else None)
                for k, v in (("action", self.action), ("reward", self.reward), ("pscore", self.pscore),
                             ("context_id", self.context_id), ("context", self.context),
                             ("position", self.position))}
        return LoggedFeedback(n_actions=self.n_actions, len_list=self.len_list,
                              action_context=self.action_context,
                              nonnegative_reward=self.nonnegative_reward, **pick)


OBD_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score")


def load_open_bandit_dataset(path: str | Path, *, behavior_policy: str = "random",
                             campaign: str = "all") -> LoggedFeedback:
    """Load one campaign of the Open Bandit Dataset (Saito et al., NeurIPS 2021 D&B).

    Reads ``<path>/<behavior_policy>/<campaign>/<campaign>.csv`` and ``item_context.csv``
    beside it, and processes them as OBP's ``OpenBanditDataset`` does: rows sorted by
    timestamp (stable), positions mapped to 0-based dense ranks, context = one-hot
    user features ``user_feature_*`` with the first level of each dropped (sorted
    levels, ``pd.get_dummies(drop_first=True)``), action context = label-encoded
    categorical item features followed by ``item_feature_0``. ``context_id`` numbers the
    distinct contexts (in sorted order of their one-hot rows).

    Raises
    ------
    DataValidationError
        Missing files or columns, or values that ``LoggedFeedback`` refuses.
    """
    folder = Path(path) / behavior_policy / campaign
    log_file, item_file = folder / f"{campaign}.csv", folder / "item_context.csv"
    for file in (log_file, item_file):
        if not file.is_file():
            raise DataValidationError(f"Open Bandit Dataset: file not found: {file}")
    data = pd.read_csv(log_file, index_col=0)
    missing = [c for c in OBD_COLUMNS if c not in data.columns]
    if missing:
        raise DataValidationError(f"{log_file}: missing columns {missing}")
    data = data.sort_values("timestamp", kind="stable")
    items = pd.read_csv(item_file, index_col=0)
    if "item_id" not in items.columns or "item_feature_0" not in items.columns:
        raise DataValidationError(f"{item_file}: needs columns item_id and item_feature_0")
    items = items.sort_values("item_id", kind="stable")
    user_cols = [c for c in data.columns if "user_feature" in c]
    context = pd.get_dummies(data[user_cols].astype(str), drop_first=True).to_numpy(dtype=np.float64)
    cat = items.drop(columns=["item_id", "item_feature_0"])
    # LabelEncoder codes: the rank of each value among its column's sorted unique values
    encoded = np.column_stack([np.unique(cat[c].astype(str), return_inverse=True)[1] for c in cat.columns]) \
        if len(cat.columns) else np.empty((len(items), 0))
    action_context = np.column_stack([encoded, items["item_feature_0"].to_numpy(dtype=np.float64)])
    positions = data["position"].to_numpy()
    _, position = np.unique(positions, return_inverse=True)
    n_actions = len(items)
    if not np.array_equal(items["item_id"].to_numpy(), np.arange(n_actions)):
        raise DataValidationError(f"{item_file}: item_id must be 0..{n_actions - 1} (one row per item)")
    # context_id: index of the row's distinct user-feature combination (for policy tables)
    _, context_id = np.unique(context, axis=0, return_inverse=True)
    return LoggedFeedback(
        context_id=context_id.ravel().astype(np.int64),
        action=data["item_id"].to_numpy(), reward=data["click"].to_numpy(), pscore=data["propensity_score"].to_numpy(),
        n_actions=n_actions, context=context, position=position.astype(np.int64),
        len_list=int(position.max()) + 1, action_context=action_context, nonnegative_reward=True,
    )


FEEDBACK_REQUIRED = ("action", "reward", "pscore")
FEEDBACK_OPTIONAL = ("position", "context_id")
CONTEXT_PREFIX = "context_"


def write_logged_feedback(feedback: LoggedFeedback, path: str | Path) -> Path:
    """Write ``feedback`` as Parquet (``.parquet``) or CSV (any other suffix): columns
    ``action, reward, pscore`` [, ``position``, ``context_id``, ``context_0..d-1``].
    ``n_actions`` and ``len_list`` are not stored: pass them to ``read_logged_feedback``
    when the log does not show the largest action or position."""
    fb = feedback
    cols: dict[str, np.ndarray] = {"action": fb.action, "reward": fb.reward, "pscore": fb.pscore}
    if fb.position is not None:
        cols["position"] = fb.position
    if fb.context_id is not None:
        cols["context_id"] = fb.context_id
    if fb.context is not None:
        cols.update({f"{CONTEXT_PREFIX}{j}": fb.context[:, j] for j in range(fb.context.shape[1])})
    frame = pd.DataFrame(cols)
    path = Path(path)
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def read_logged_feedback(path: str | Path, *, n_actions: int | None = None, len_list: int | None = None,
                         nonnegative_reward: bool = False) -> LoggedFeedback:
    """Read logged bandit feedback from Parquet or CSV (the layout of ``write_logged_feedback``).

    Columns: ``action`` (int), ``reward``, ``pscore`` required; ``position``,
    ``context_id`` and feature columns ``context_0, context_1, ...`` optional. Any other
    column is an error (nothing is silently dropped). ``n_actions`` and ``len_list``
    default to the largest id + 1 seen in the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(f"logged feedback: file not found: {path}")
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in FEEDBACK_REQUIRED if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{path}: missing columns {missing} (has {list(frame.columns)[:8]})")
    feature_cols = [c for c in frame.columns if c.startswith(CONTEXT_PREFIX) and c != "context_id"]
    unknown = [c for c in frame.columns
               if c not in FEEDBACK_REQUIRED + FEEDBACK_OPTIONAL and c not in feature_cols]
    if unknown:
        raise DataValidationError(f"{path}: {len(unknown)} unknown columns {unknown[:5]}; expected "
                                  f"{list(FEEDBACK_REQUIRED + FEEDBACK_OPTIONAL)} and {CONTEXT_PREFIX}<j> features")
    try:  # context_0, context_1, ... in numeric order
        feature_cols.sort(key=lambda c: int(c[len(CONTEXT_PREFIX):]))
    except ValueError as exc:
        raise DataValidationError(f"{path}: feature columns must be named {CONTEXT_PREFIX}<int>") from exc
    action = frame["action"].to_numpy()
    position = frame["position"].to_numpy() if "position" in frame.columns else None
    if n_actions is None:
        n_actions = int(action.max()) + 1 if len(action) and action.dtype.kind in "iu" else 1
    if len_list is None:
        len_list = int(position.max()) + 1 if position is not None and position.dtype.kind in "iu" else 1
    return LoggedFeedback(
        action=action, reward=frame["reward"].to_numpy(), pscore=frame["pscore"].to_numpy(),
        n_actions=n_actions, position=position, len_list=len_list,
        context_id=frame["context_id"].to_numpy() if "context_id" in frame.columns else None,
        context=frame[feature_cols].to_numpy(dtype=np.float64) if feature_cols else None,
        nonnegative_reward=nonnegative_reward,
    )
