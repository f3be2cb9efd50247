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
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from .ids import IdMap, id_maps

__all__ = ["FEEDBACK_COLUMNS", "LoggedFeedback", "OBD_BEHAVIOR_POLICIES", "OBD_CAMPAIGNS", "check_propensity",
           "load_logged_feedback", "load_open_bandit_dataset", "read_logged_feedback", "write_logged_feedback"]


def check_propensity(values: Any, *, source: str, column: str) -> np.ndarray:
    """Logging propensities as float64, each in (0, 1].

    Raises
    ------
    DataValidationError
        Naming the file, the column, how many are zero, NaN or otherwise outside (0, 1],
        with examples: IPS divides by the propensity, so a zero or NaN is never kept.
    """
    arr = np.asarray(values)
    if arr.dtype.kind not in "fiu":
        raise DataValidationError(f"{source}: column {column!r} (propensity) must be numeric, got dtype {arr.dtype}")
    p = arr.astype(np.float64)
    bad = ~((p > 0) & (p <= 1))
    if bad.any():
        zero, nan = int((p == 0).sum()), int(np.isnan(p).sum())
        raise DataValidationError(
            f"pscore: {int(bad.sum())} of {len(p)} propensities outside (0, 1] or NaN in {source}, column "
            f"{column!r} ({zero} zero, {nan} NaN, {int(bad.sum()) - zero - nan} other; "
            f"{describe_examples(p[bad])}); every logged action needs its logging probability > 0")
    return p


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
OBD_BEHAVIOR_POLICIES = ("random", "bts")
OBD_CAMPAIGNS = ("all", "men", "women")


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
    if behavior_policy not in OBD_BEHAVIOR_POLICIES:
        raise ConfigError(f"Open Bandit Dataset: behavior_policy must be one of {list(OBD_BEHAVIOR_POLICIES)}, "
                          f"got {behavior_policy!r}")
    if campaign not in OBD_CAMPAIGNS:
        raise ConfigError(f"Open Bandit Dataset: campaign must be one of {list(OBD_CAMPAIGNS)}, got {campaign!r}")
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
    pscore = check_propensity(data["propensity_score"].to_numpy(), source=str(log_file), column="propensity_score")
    click = data["click"].to_numpy()
    if click.dtype.kind not in "iub" or ((click != 0) & (click != 1)).any():
        bad = ~np.isin(click, (0, 1))
        raise DataValidationError(f"{log_file}: column 'click' must hold 0/1; {int(bad.sum())} rows do not "
                                  f"({describe_examples(click[bad])})")
    unknown = (data["item_id"].to_numpy() < 0) | (data["item_id"].to_numpy() >= n_actions)
    if unknown.any():
        raise DataValidationError(f"{log_file}: column 'item_id': {int(unknown.sum())} rows name items that "
                                  f"{item_file} does not list ({describe_examples(data['item_id'].to_numpy()[unknown])}; "
                                  f"it lists 0..{n_actions - 1})")
    # context_id: index of the row's distinct user-feature combination (for policy tables)
    _, context_id = np.unique(context, axis=0, return_inverse=True)
    return LoggedFeedback(
        context_id=context_id.ravel().astype(np.int64),
        action=data["item_id"].to_numpy(), reward=click, pscore=pscore,
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


FEEDBACK_COLUMNS = ("context", "action", "position", "reward", "propensity")


def _positions(values: np.ndarray, source: str, column: str) -> tuple[np.ndarray, int]:
    """0-based slots from a column of consecutive integer positions (0- or 1-based)."""
    if values.dtype.kind not in "iu":
        raise DataValidationError(f"{source}: column {column!r} (position) must hold integers, got dtype "
                                  f"{values.dtype} ({describe_examples(values[:3])})")
    levels, slot = np.unique(values, return_inverse=True)
    if levels[-1] - levels[0] != len(levels) - 1:
        raise DataValidationError(f"{source}: column {column!r} (position) must hold consecutive integers (0- or "
                                  f"1-based slots); found {len(levels)} distinct values from {levels[0]} to "
                                  f"{levels[-1]} ({describe_examples(levels, limit=6)})")
    return slot.ravel().astype(np.int64), len(levels)


def load_logged_feedback(path: str | Path, *, columns: Mapping[str, str], dataset: Any = None,
                         users: IdMap | None = None, items: IdMap | None = None,
                         context_features: Sequence[str] = (), nonnegative_reward: bool = False,
                         delimiter: str | None = None) -> LoggedFeedback:
    """Logged bandit feedback from a Parquet/CSV file with the user's own column names and ids.

    Parameters
    ----------
    path : str or Path
        ``.parquet``/``.pq`` or CSV (``.tsv``: tab separated).
    columns : mapping
        Canonical name -> the file's column: ``action`` (the item shown), ``reward`` and
        ``propensity`` (the logging probability of the shown item at its position) are
        required; ``context`` (the user or request id) and ``position`` are optional.
    dataset : InteractionDataset, optional
        Whose id maps translate the file's users (``context``) and items (``action``) to
        codes; or give ``users``/``items`` directly. Without maps, ids are the codes.
    users, items : IdMap, optional
        ``items`` (or ``dataset``) is required: it fixes ``n_actions``.
    context_features : sequence of str
        Numeric columns that become ``LoggedFeedback.context`` features, in this order.
    nonnegative_reward : bool, default False
    delimiter : str, optional
        CSV delimiter (default ``,``; ``\\t`` for ``.tsv``).

    Returns
    -------
    LoggedFeedback
        ``action`` and ``context_id`` in codes; positions renumbered ``0..L-1`` from the
        file's consecutive integers (``1, 2, 3`` -> ``0, 1, 2``).

    Raises
    ------
    ConfigError
        Unknown canonical names, missing required mappings, a column mapped twice, no
        id map for the items, a missing file.
    DataValidationError
        Unknown ids (file, column, count, examples of both sides); zero, NaN or > 1
        propensities (file, column, counts); NaN rewards; non-consecutive positions;
        NaN features; missing columns.
    """
    from .tables import read_table

    unknown = set(columns) - set(FEEDBACK_COLUMNS)
    if unknown:
        raise ConfigError(f"feedback columns: unknown names {sorted(unknown)}; known: {', '.join(FEEDBACK_COLUMNS)}")
    need = [c for c in ("action", "reward", "propensity") if c not in columns]
    if need:
        raise ConfigError(f"feedback columns: mappings for {need} are required (e.g. action: item_id)")
    source_cols = list(columns.values()) + list(context_features)
    if len(set(source_cols)) != len(source_cols):
        raise ConfigError(f"feedback columns: each column may be mapped once, got {dict(columns)} and features "
                          f"{list(context_features)}")
    if dataset is not None:
        users, items = id_maps(dataset)
    if items is None:
        raise ConfigError("feedback: the item id map is required (pass dataset= or items=): it fixes n_actions")
    ids = [columns[c] for c in ("context", "action") if c in columns]
    frame = read_table(path, delimiter=delimiter, columns=source_cols, id_columns=ids)
    name = str(path)
    if len(frame) == 0:
        raise DataValidationError(f"{name}: is empty (0 rows)")
    action = items.encode(frame[columns["action"]], source=name, column=columns["action"])
    context_id = None
    if "context" in columns:
        if users is None:  # no user map: ids are non-negative integer codes of any range
            raw = frame[columns["context"]].to_numpy()
            if raw.dtype.kind not in "iu" or (raw < 0).any():
                raise DataValidationError(f"{name}: column {columns['context']!r} (context) must hold non-negative "
                                          f"integer ids without a user id map ({describe_examples(raw[:3])})")
            context_id = raw.astype(np.int64)
        else:
            context_id = users.encode(frame[columns["context"]], source=name, column=columns["context"])
    reward = frame[columns["reward"]].to_numpy()
    if reward.dtype.kind not in "fiub":
        raise DataValidationError(f"{name}: column {columns['reward']!r} (reward) must be numeric, got dtype "
                                  f"{reward.dtype}")
    bad = ~np.isfinite(reward.astype(np.float64))
    if bad.any():
        raise DataValidationError(f"{name}: column {columns['reward']!r} (reward) has {int(bad.sum())} NaN or "
                                  f"infinite values of {len(reward)}")
    pscore = check_propensity(frame[columns["propensity"]].to_numpy(), source=name, column=columns["propensity"])
    position, len_list = None, 1
    if "position" in columns:
        position, len_list = _positions(frame[columns["position"]].to_numpy(), name, columns["position"])
    context = None
    if context_features:
        feats = frame[list(context_features)]
        non_numeric = [c for c in context_features if feats[c].to_numpy().dtype.kind not in "fiub"]
        if non_numeric:
            raise DataValidationError(f"{name}: context feature columns {non_numeric} are not numeric")
        context = feats.to_numpy(dtype=np.float64)
        bad_rows = ~np.isfinite(context).all(axis=1)
        if bad_rows.any():
            cols = [c for j, c in enumerate(context_features) if not np.isfinite(context[:, j]).all()]
            raise DataValidationError(f"{name}: {int(bad_rows.sum())} rows have NaN or infinite context features "
                                      f"(columns {cols})")
    return LoggedFeedback(action=action, reward=reward, pscore=pscore, n_actions=items.n, context_id=context_id,
                          context=context, position=position, len_list=len_list,
                          nonnegative_reward=nonnegative_reward)
