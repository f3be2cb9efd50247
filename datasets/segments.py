"""Segments of evaluation units (users / queries): read from the user's table, or bucketed
by activity, for the decomposition of a metric's change by segment.

Every function returns a ``pd.Series`` of segment labels (strings) indexed by the unit's
id written as text, the way results folders and reports name units, so a run's
per-unit values (``per_unit.parquet``) and a segment table join on the same key
whatever the id type was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples

from .tables import missing_labels, read_table

NO_SEGMENT = "(no segment)"


def unit_keys(ids: pd.Index | np.ndarray | pd.Series) -> pd.Index:
    """Unit ids as the text key segments are joined on (integers as canonical digits)."""
    return pd.Index(np.asarray(ids).astype(str), name="unit_id")


def read_segments(path: str | Path, *, by: str, id_column: str = "unit_id") -> pd.Series:
    """The segment of every unit listed in the table at ``path`` (CSV or Parquet).

    Raises
    ------
    ConfigError
        The file does not exist.
    DataValidationError
        A missing column (the file's columns are listed), a unit listed twice, or units
        without a segment (counted, with examples).
    """
    table = read_table(path, columns=[id_column, by], id_columns=[id_column], label_columns=[by])
    ids, labels = table[id_column], table[by]
    keys = unit_keys(ids.to_numpy())
    dup = keys.duplicated()
    if dup.any():
        raise DataValidationError(f"{path}: {int(dup.sum())} unit id(s) listed more than once in {id_column!r} "
                                  f"({describe_examples(keys[dup])}); a unit belongs to one segment")
    empty = missing_labels(labels)
    if empty.any():
        raise DataValidationError(f"{path}: {int(empty.sum())} unit(s) have no {by!r} "
                                  f"({describe_examples(keys[empty])}); fill them or drop the rows")
    return pd.Series(labels.astype(str).to_numpy(), index=keys, name=by)


def activity_labels(edges: list[int]) -> list[str]:
    """Bucket names for training-interaction counts split at ``edges``: ``[5, 20]`` ->
    ``["0-4 interactions", "5-19 interactions", "20+ interactions"]``."""
    bounds = [0, *edges]
    names = [f"{lo}-{hi - 1} interactions" if hi - 1 > lo else f"{lo} interactions"
             for lo, hi in zip(bounds[:-1], bounds[1:])]
    return names + [f"{edges[-1]}+ interactions"]


def activity_segments(train_users: np.ndarray, n_users: int, user_ids: np.ndarray | None,
                      edges: list[int]) -> pd.Series:
    """Every user's activity bucket: its number of training interactions cut at ``edges``
    (cold users, with fewer than ``edges[0]``, first).

    ``train_users`` are the training rows' user codes ``0..n_users-1``; ``user_ids`` maps a
    code to the data's own id (None: the codes are the ids).
    """
    counts = np.bincount(np.asarray(train_users, dtype=np.int64), minlength=n_users)
    bucket = np.searchsorted(np.asarray(edges), counts, side="right")
    labels = np.asarray(activity_labels(edges), dtype=object)[bucket]
    ids = np.arange(n_users) if user_ids is None else np.asarray(user_ids)
    return pd.Series(labels.astype(str), index=unit_keys(ids), name="activity")


def segment_labels(units: pd.Index, segments: pd.Series, *, side: str, source: str,
                   missing: str) -> tuple[np.ndarray, int]:
    """Each unit's segment label (text, an object array) and how many units had none (labelled ``NO_SEGMENT``
    when ``missing == "separate"``; a ``DataValidationError`` naming them otherwise)."""
    import pyarrow as pa

    keys = unit_keys(units)
    # one Arrow hash pass over both key sets: a pandas reindex of text ids is 3-5x slower
    both = pa.concat_arrays([pa.array(k).cast(pa.large_string()) for k in (segments.index, keys)])
    codes = both.dictionary_encode().indices.to_numpy()
    encoded = pa.array(segments).cast(pa.large_string()).dictionary_encode()
    label_codes, names = encoded.indices.to_numpy(), encoded.dictionary.to_pylist()
    lookup = np.full(int(codes.max(initial=-1)) + 1, -1, dtype=np.int64)
    lookup[codes[: len(segments)]] = label_codes
    found = lookup[codes[len(segments):]]
    absent = found < 0
    n_absent = int(absent.sum())
    if n_absent and missing == "error":
        raise DataValidationError(
            f"segments: {n_absent} of {len(keys)} {side} units have no segment in {source} "
            f"({describe_examples(keys[absent])}); add them to the table, or set 'missing: separate' "
            f"(--missing separate) to count them as a segment {NO_SEGMENT!r}")
    # a take from the few names (text per unit only at the end: a per-unit str conversion is slow)
    labels = np.asarray([str(n) for n in names] + [NO_SEGMENT], dtype=object)[np.where(absent, len(names), found)]
    return labels, n_absent


NO_HISTORY = "no training interactions"


def taste_labels(edges: list[int]) -> list[str]:
    """Names of taste buckets cut at popularity percentiles ``edges``: ``[33, 67]`` ->
    ``["niche (<p33)", "p33-p67", "mainstream (>=p67)"]``."""
    middle = [f"p{lo}-p{hi}" for lo, hi in zip(edges[:-1], edges[1:])]
    return [f"niche (<p{edges[0]})", *middle, f"mainstream (>=p{edges[-1]})"]


def taste_segments(train_users: np.ndarray, train_items: np.ndarray, n_users: int, n_items: int,
                   user_ids: np.ndarray | None, edges: list[int]) -> pd.Series:
    """Every user's taste bucket: the mean popularity percentile of its training items, cut
    at the percentiles ``edges`` (niche users, who mostly interact with rarely seen items,
    first); users without training interactions form a bucket of their own.

    An item's popularity percentile is its mid-rank among the catalogue's items by
    training interactions, ``100 (rank - 1/2) / n_items`` (ties share their average rank).
    """
    from scipy.stats import rankdata

    users = np.asarray(train_users, dtype=np.int64)
    items = np.asarray(train_items, dtype=np.int64)
    percentile = 100.0 * (rankdata(np.bincount(items, minlength=n_items)) - 0.5) / n_items
    counts = np.bincount(users, minlength=n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        taste = np.bincount(users, weights=percentile[items], minlength=n_users) / counts
    bucket = np.searchsorted(np.asarray(edges, dtype=np.float64), taste, side="right")
    labels = np.asarray(taste_labels(edges), dtype=object)[np.minimum(bucket, len(edges))]
    labels[counts == 0] = NO_HISTORY
    ids = np.arange(n_users) if user_ids is None else np.asarray(user_ids)
    return pd.Series(labels.astype(str), index=unit_keys(ids), name="popularity")
