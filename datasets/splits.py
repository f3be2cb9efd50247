"""Train/test splits of an interaction log, each returning a boolean test mask.

Four splits, all vectorised (one lexsort, no loop over users):

- ``random``: a seeded uniform sample of ``round(n * test_fraction)`` rows.
- ``temporal``: one global cut; rows after the cut are test. Every train timestamp is
  <= every test timestamp.
- ``leave_last_out``: each user's last ``k`` interactions (by time) are test.
- ``temporal_ratio``: each user's last ``floor(n_u * test_fraction)`` interactions are test.

Per-user splits order a user's rows by ``(timestamp, tiebreak)``, so that the result does
not depend on row order in the file, and never put all of a user's rows in test: a user
with too few rows keeps them all in train, and is counted in the split's statistics.
Within a user, every train timestamp is <= every test timestamp.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError

SPLIT_KINDS = ("random", "temporal", "leave_last_out", "temporal_ratio")


def _check_fraction(test_fraction: float, kind: str) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"split {kind}: test_fraction must be in (0, 1), got {test_fraction}")


def random_split(n_rows: int, *, test_fraction: float, seed: int) -> np.ndarray:
    """Seeded uniform test sample of exactly ``round(n_rows * test_fraction)`` rows.

    Parameters
    ----------
    n_rows : int
        Rows of the log (in the builder's canonical (user, item) order).
    test_fraction : float in (0, 1)
        Share of rows held out.
    seed : int
        Seed of the permutation.

    Returns
    -------
    ndarray of bool, shape (n_rows,)
        True for held-out rows.

    Examples
    --------
    >>> from harness.datasets.splits import random_split
    >>> int(random_split(10, test_fraction=0.3, seed=0).sum())
    3
    """
    _check_fraction(test_fraction, "random")
    rng = np.random.default_rng(seed)
    mask = np.zeros(n_rows, dtype=bool)
    mask[rng.permutation(n_rows)[: int(round(n_rows * test_fraction))]] = True
    return mask


def temporal_split(timestamps: np.ndarray, *, test_fraction: float | None = None,
                   cutoff: float | None = None) -> np.ndarray:
    """Global cut: test rows are those with ``timestamp > cut``.

    Parameters
    ----------
    timestamps : ndarray
        Numbers or datetime64 (see :func:`as_sortable_times`).
    test_fraction : float in (0, 1), optional
        The cut is the timestamp of the last train row when rows are sorted by time and
        the last ``round(n * test_fraction)`` are test. Rows tied with the cut stay in
        train, so the test share can be smaller than asked.
    cutoff : number or ISO date text, optional
        The cut itself. Give exactly one of ``test_fraction`` and ``cutoff``.

    Returns
    -------
    ndarray of bool
        True for held-out rows; ``max(train ts) <= min(test ts)`` always holds.

    Examples
    --------
    >>> import numpy as np
    >>> from harness.datasets.splits import temporal_split
    >>> temporal_split(np.array([1, 2, 2, 3]), test_fraction=0.5).tolist()
    [False, False, False, True]
    """
    if (test_fraction is None) == (cutoff is None):
        raise ConfigError("split temporal: give exactly one of test_fraction or cutoff")
    ts = np.asarray(timestamps)
    if cutoff is None:
        _check_fraction(float(test_fraction), "temporal")  # type: ignore[arg-type]
        n_test = int(round(len(ts) * float(test_fraction)))  # type: ignore[arg-type]
        if n_test == 0:
            return np.zeros(len(ts), dtype=bool)
        cut = np.partition(ts, len(ts) - n_test - 1)[len(ts) - n_test - 1] if n_test < len(ts) else None
        if cut is None:
            raise ConfigError(f"split temporal: test_fraction {test_fraction} leaves no train rows")
        return ts > cut
    if np.issubdtype(ts.dtype, np.datetime64):
        if isinstance(cutoff, (int, float, np.number)) and not isinstance(cutoff, bool):
            # pandas would read a number as nanoseconds since 1970: every row after the cutoff
            as_seconds = pd.Timestamp(float(cutoff), unit="s", tz="UTC").isoformat().replace("+00:00", "Z")
            raise ConfigError(f"split temporal: cutoff {cutoff!r} is a number but the timestamps are dates: give "
                              f"the cutoff as a date (as Unix seconds, {cutoff!r} is {as_seconds!r})")
        cut = pd.Timestamp(cutoff)
        if cut.tz is not None:  # timestamps arrive as UTC instants (see as_sortable_times)
            cut = cut.tz_convert("UTC").tz_localize(None)
        return ts > cut.to_datetime64()
    try:
        return ts > float(cutoff)
    except (TypeError, ValueError):
        raise ConfigError(f"split temporal: cutoff {cutoff!r} is not a number, and the timestamps are "
                          f"numbers (dtype {ts.dtype})") from None


def as_sortable_times(values: pd.Series) -> np.ndarray:
    """Timestamps as a NumPy array that sorts by time: numbers as they are, naive datetimes
    as datetime64, time-zone-aware ones as the same instants in naive UTC."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return values.to_numpy()


def _fast_order(users: np.ndarray, timestamps: np.ndarray, tiebreak: np.ndarray) -> np.ndarray | None:
    """The (user, timestamp, tiebreak) order by one stable argsort of a packed int64 key,
    when rows already come sorted by (user, tiebreak) with integer ids (as the builder
    makes them); else None. Three times faster than a three-key lexsort at 10M rows."""
    if not (np.issubdtype(users.dtype, np.integer) and np.issubdtype(np.asarray(tiebreak).dtype, np.integer)):
        return None
    if len(users) < 2 or users.min() < 0:
        return None
    same = users[1:] == users[:-1]
    if not ((users[1:] > users[:-1]) | (same & (tiebreak[1:] >= tiebreak[:-1]))).all():
        return None
    t = timestamps.view(np.int64) if np.issubdtype(timestamps.dtype, np.datetime64) else timestamps
    if np.issubdtype(t.dtype, np.integer):
        low, span = int(t.min()), int(t.max()) - int(t.min()) + 1
        rel = t.astype(np.int64) - low
    else:
        rel = np.unique(t, return_inverse=True)[1].astype(np.int64)
        span = int(rel.max()) + 1
    if (int(users.max()) + 1) * span >= 2**62:
        return None
    return np.argsort(users.astype(np.int64) * span + rel, kind="stable")


def _user_order(users: np.ndarray, timestamps: np.ndarray, tiebreak: np.ndarray) -> tuple[np.ndarray, ...]:
    """Row order by (user, timestamp, tiebreak), each row's position from the end of its
    user's rows (0 = latest) and its user's row count."""
    order = _fast_order(users, timestamps, tiebreak)
    if order is None:
        order = np.lexsort((tiebreak, timestamps, users))
    u = users[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    sizes = np.diff(np.r_[starts, len(u)])
    size_of_row = np.repeat(sizes, sizes)
    pos = np.arange(len(u)) - np.repeat(starts, sizes)
    return order, size_of_row - 1 - pos, size_of_row


def leave_last_out(users: np.ndarray, timestamps: np.ndarray, tiebreak: np.ndarray, *, k: int = 1) -> np.ndarray:
    """Each user's last ``k`` rows by time are test; users with <= k rows stay in train.

    Parameters
    ----------
    users, timestamps, tiebreak : ndarray
        Per row: user id, time, and the key that orders rows of equal time (item id).
    k : int >= 1
        Rows held out per user.

    Returns
    -------
    ndarray of bool
        True for held-out rows; per user, every train time <= every test time.

    Examples
    --------
    >>> import numpy as np
    >>> from harness.datasets.splits import leave_last_out
    >>> leave_last_out(np.array([0, 0, 0, 1]), np.array([5, 1, 3, 9]), np.arange(4), k=1).tolist()
    [True, False, False, False]
    """
    if k < 1:
        raise ConfigError(f"split leave_last_out: k must be >= 1, got {k}")
    order, from_end, size = _user_order(users, timestamps, tiebreak)
    mask = np.zeros(len(users), dtype=bool)
    mask[order] = (from_end < k) & (size > k)
    return mask


def temporal_ratio(users: np.ndarray, timestamps: np.ndarray, tiebreak: np.ndarray, *,
                   test_fraction: float) -> np.ndarray:
    """Each user's last ``floor(n_u * test_fraction)`` rows by time are test (at least one
    row of every user stays in train).

    Parameters
    ----------
    users, timestamps, tiebreak : ndarray
        Per row: user id, time, and the key that orders rows of equal time (item id).
    test_fraction : float in (0, 1)
        Share of each user's rows held out, rounded down.

    Returns
    -------
    ndarray of bool
        True for held-out rows; per user, every train time <= every test time.

    Examples
    --------
    >>> import numpy as np
    >>> from harness.datasets.splits import temporal_ratio
    >>> temporal_ratio(np.zeros(5, int), np.arange(5), np.arange(5), test_fraction=0.5).tolist()
    [False, False, False, True, True]
    """
    _check_fraction(test_fraction, "temporal_ratio")
    order, from_end, size = _user_order(users, timestamps, tiebreak)
    n_test = np.minimum(np.floor(size * test_fraction), size - 1)
    mask = np.zeros(len(users), dtype=bool)
    mask[order] = from_end < n_test
    return mask


def split_mask(spec: dict[str, Any], *, users: np.ndarray, items: np.ndarray,
               timestamps: np.ndarray | None, seed: int) -> np.ndarray:
    """Dispatch a split spec ``{kind, ...}`` to its function; returns the test mask.

    Temporal and per-user splits need timestamps; ``leave_last_out`` without them is
    refused rather than silently falling back to row order.
    """
    params = {k: v for k, v in spec.items() if k != "kind" and v is not None}
    kind = spec.get("kind")
    if kind == "random":
        return random_split(len(users), test_fraction=params.get("test_fraction", 0.2),
                            seed=params.get("seed", seed))
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split kind {kind!r} is unknown; known: {', '.join(SPLIT_KINDS)}")
    if timestamps is None:
        raise DataValidationError(f"split {kind} needs a timestamp column, and the data has none")
    if kind == "temporal":
        return temporal_split(timestamps, test_fraction=params.get("test_fraction"), cutoff=params.get("cutoff"))
    if kind == "leave_last_out":
        return leave_last_out(users, timestamps, items, k=params.get("k", 1))
    return temporal_ratio(users, timestamps, items, test_fraction=params.get("test_fraction", 0.2))
