"""The one builder that turns any loaded interaction log (MovieLens or generic) into an
``InteractionDataset``, shared by ``datasets.interactions`` and ``datasets.movielens``.

The builder validates the raw table (``datasets.schema``), maps raw user and item ids to
contiguous ``0..n-1`` ints (sorted raw ids, so the mapping does not depend on row order)
and keeps the mapping, splits (``datasets.splits``), judges the held-out rows
(``datasets.judgments``) and counts cold-start users and items. Nothing is dropped without
being asked for in the spec, and every removal is counted in ``dataset.warnings``.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, plain_value

from .base import InteractionDataset
from .judgments import judge
from .schema import (Violation, find_violations, in_source, interactions_schema, raise_violations,
                     reference_violations)
from .splits import as_sortable_times, split_mask

COLD_START_POLICIES = ("keep", "exclude", "only")
DUPLICATE_POLICIES = ("error", "keep_last")


def _map_ids(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, sort=True)
    return codes.astype(np.int64), np.asarray(uniques)


def _pair_order(users: np.ndarray, items: np.ndarray, n_items: int, log: pd.DataFrame) -> np.ndarray:
    """Rows by (user, item), then by timestamp (if any), then file order."""
    key = users * np.int64(n_items) + items
    if "timestamp" in log.columns:
        return np.lexsort((as_sortable_times(log["timestamp"]), key))
    return np.argsort(key, kind="stable")


def _unique_pairs(users: np.ndarray, items: np.ndarray, n_items: int, log: pd.DataFrame, *,
                  keep_last: bool) -> tuple[np.ndarray, int]:
    """Row positions in (user, item) order, one per pair (its latest row), and how many
    rows repeat a pair. Without repeats this is one stable argsort of a packed key."""
    key = users * np.int64(n_items) + items
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    last = np.r_[sorted_key[1:] != sorted_key[:-1], True]
    n_dup = int(len(order) - last.sum())
    if n_dup and keep_last:
        order = _pair_order(users, items, n_items, log)
        return order[last], n_dup  # same groups, so the same 'last' flags
    return order, n_dup


def _duplicate_rows(users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Positions of rows that repeat an earlier row's (user, item) pair."""
    key = users * np.int64(n_items) + items
    order = np.argsort(key, kind="stable")
    repeat = np.r_[False, key[order][1:] == key[order][:-1]]
    return np.sort(order[repeat])


def _side_table(table: pd.DataFrame, key: str, raw_ids: np.ndarray, *, what: str,
                warnings: list[str]) -> pd.DataFrame:
    """Re-key a side table from raw ids (column ``key``) to internal ids, in id order."""
    pos = pd.Index(raw_ids).get_indexer(table[key])
    unknown = pos < 0
    if unknown.any():
        keep = " (dataset.catalogue: item_features keeps the item table's)" if what.startswith("item") else ""
        warnings.append(f"{what}: {int(unknown.sum())} rows for ids without interactions are not part of "
                        f"the catalogue and were left out{keep}")
    out = table.loc[~unknown].drop(columns=[key])
    id_col = "item_id" if what.startswith("item") else "user_id"
    out.insert(0, id_col, pos[~unknown].astype(np.int64))
    return out.sort_values(id_col, kind="stable").reset_index(drop=True)


def _time_text(value: Any) -> str:
    """A timestamp for a message: a date as ISO 8601, a number as it is."""
    return str(pd.Timestamp(value).isoformat()) if isinstance(value, np.datetime64) else repr(plain_value(value))


def _cold_start(train: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean flags over test rows: user unseen in train, item unseen in train."""
    seen_u = np.zeros(n_users, dtype=bool)
    seen_i = np.zeros(n_items, dtype=bool)
    seen_u[train["user_id"].to_numpy()] = True
    seen_i[train["item_id"].to_numpy()] = True
    return ~seen_u[test["user_id"].to_numpy()], ~seen_i[test["item_id"].to_numpy()]


def _canonical(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A spec as it goes into the fingerprint: unset (None) keys dropped and whole floats
    written as ints, so that ``{threshold: 4}`` and ``{threshold: 4.0, grades: null}`` agree."""
    def norm(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {norm(k): norm(x) for k, x in v.items() if x is not None}
        if isinstance(v, float) and v.is_integer():
            return int(v)
        return v

    return norm(dict(spec))


def build_dataset(
    log: pd.DataFrame,
    *,
    name: str,
    split: Mapping[str, Any],
    relevance: Mapping[str, Any],
    seed: int = 0,
    rating_range: tuple[float | None, float | None] = (None, None),
    item_categories: pd.DataFrame | None = None,
    known_items: pd.Series | None = None,
    known_users: pd.Series | None = None,
    catalogue_items: pd.Series | None = None,
    source: tuple[str, Mapping[str, str]] | None = None,
    id_kind: str = "id",
    item_features: pd.DataFrame | None = None,
    user_features: pd.DataFrame | None = None,
    cold_start: str = "keep",
    duplicates: str = "error",
    settings: Mapping[str, Any] | None = None,
) -> InteractionDataset:
    """Validate, map, split and judge an interaction log.

    Parameters
    ----------
    log : DataFrame
        Canonical columns ``user``, ``item`` and optionally ``rating``, ``label``, ``timestamp``.
    name : str
        Name of the data set (results, MLflow).
    split : mapping
        ``{kind: random|temporal|leave_last_out|temporal_ratio, ...}`` (see ``datasets.splits``).
    relevance : mapping
        ``{from: rating, threshold: 4}``, ``{from: rating, grades: {4: 1, 5: 2}}``,
        ``{from: label}`` or ``{from: interaction}`` (see ``datasets.judgments``).
    seed : int
        Seed of the random split (unless the split spec has its own ``seed``).
    rating_range : (low, high)
        Inclusive range every rating must lie in.
    item_categories : DataFrame, optional
        Raw ``item``, ``category`` rows (e.g. genres).
    known_items, known_users : Series, optional
        Raw ids of the item / user table (e.g. every movie listed); an interaction with
        another item / user is a violation.
    catalogue_items : Series, optional
        Raw ids of items that join the catalogue with or without interactions (the item
        table's, with ``catalogue: item_features``): new items a model may rank. Without
        it the catalogue is the items of the log, and side-table rows of other items are
        left out (counted in ``warnings``).
    source : (file, {canonical column: source column}), optional
        Where ``log`` was read from: its violations then name the file and the user's
        own column names.
    id_kind : {"id", "integer", "string"}
        What raw user and item ids must be (MovieLens ids are integers).
    item_features, user_features : DataFrame, optional
        Side tables with raw ids in column ``item`` / ``user``.
    cold_start : {"keep", "exclude", "only"}
        Held-out users unseen in training: ``keep`` evaluates them with the rest (they are
        listed in ``segments["cold_users"]``), ``exclude`` leaves their judgments out and
        ``only`` evaluates nothing else, so that two runs report warm and cold users apart;
        every removal is counted in ``warnings``.
    duplicates : {"error", "keep_last"}
        Repeated (user, item) rows are an error, or collapse to the latest one (counted).
    settings : mapping, optional
        Loader settings for the fingerprint (format, column mapping); never file paths.
    """
    if cold_start not in COLD_START_POLICIES:
        raise ConfigError(f"cold_start: {cold_start!r} is unknown; known: {', '.join(COLD_START_POLICIES)}")
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"duplicates: {duplicates!r} is unknown; known: {', '.join(DUPLICATE_POLICIES)}")
    warnings: list[str] = []
    frame, user_ids, item_ids = _checked_frame(log, rating_range=rating_range, known_users=known_users,
                                               known_items=known_items, catalogue_items=catalogue_items,
                                               source=source, id_kind=id_kind, duplicates=duplicates,
                                               warnings=warnings)
    split = _canonical({**split, "seed": split.get("seed", seed)} if split.get("kind") == "random" else split)
    ts = as_sortable_times(frame["timestamp"]) if "timestamp" in frame.columns else None
    test_mask = split_mask(split, users=frame["user_id"].to_numpy(), items=frame["item_id"].to_numpy(),
                           timestamps=ts, seed=seed)
    train = frame[~test_mask].reset_index(drop=True)
    test = frame[test_mask].reset_index(drop=True)
    if len(test) == 0:
        raise DataValidationError(f"split {split}: no interaction was held out "
                                  f"({len(frame)} rows, {len(user_ids)} users); nothing to evaluate")
    if len(train) == 0:  # e.g. a cutoff before the first timestamp, or in other units (ms against s)
        raise DataValidationError(f"split {split}: every interaction was held out ({len(frame)} rows"
                                  + (f", timestamps from {_time_text(ts.min())} to {_time_text(ts.max())}"
                                     if ts is not None else "") + "); nothing to train on")
    n_users, n_items = len(user_ids), len(item_ids)
    with_test = int(np.unique(test["user_id"].to_numpy()).size)
    stats = {"train_rows": len(train), "test_rows": len(test), "users_with_test": with_test,
             "users_without_test": n_users - with_test}
    if split["kind"] in ("leave_last_out", "temporal_ratio") and stats["users_without_test"]:
        warnings.append(f"split: {stats['users_without_test']} users have too few interactions to hold any out "
                        f"under {split}; all their rows are in train")
    qrels, counts, segments = _judgments(train, test, n_users, n_items, relevance=relevance, split=split,
                                         cold_start=cold_start, warnings=warnings)
    cats = None
    if item_categories is not None:
        cats = _side_table(item_categories[["item", "category"]], "item", item_ids, what="item categories",
                           warnings=warnings)
        cats = cats.drop_duplicates().sort_values(["item_id", "category"], kind="stable").reset_index(drop=True)
    feats = {k: _side_table(t, k, ids, what=f"{k} features", warnings=warnings)
             for k, t, ids in (("item", item_features, item_ids), ("user", user_features, user_ids)) if t is not None}
    # the seed enters through the random split only: a deterministic split's data do not depend on it
    all_settings = {**dict(settings or {}), "split": split, "relevance": _canonical(relevance),
                    "cold_start": cold_start, "duplicates": duplicates}
    return InteractionDataset(
        name=name, train=train, qrels=qrels, n_users=n_users, n_items=n_items, settings=all_settings,
        item_categories=cats, user_ids=user_ids, item_ids=item_ids, item_features=feats.get("item"),
        user_features=feats.get("user"), cold_start=counts, split_stats=stats, segments=segments,
        warnings=warnings,
    )


def _checked_frame(log: pd.DataFrame, *, rating_range: tuple[float | None, float | None],
                   known_users: pd.Series | None, known_items: pd.Series | None,
                   catalogue_items: pd.Series | None, source: tuple[str, Mapping[str, str]] | None,
                   id_kind: str, duplicates: str,
                   warnings: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Validate the raw log, map ids, resolve duplicates; rows come out in (user, item) order,
    the canonical order that makes everything after it independent of the file's row order."""
    def raise_found(violations: list[Violation]) -> None:
        raise_violations(violations if source is None else in_source(violations, *source))

    schema = interactions_schema(rating="rating" in log.columns, label="label" in log.columns,
                                 timestamp="timestamp" in log.columns, rating_range=rating_range, unique=False,
                                 ids=id_kind)  # type: ignore[arg-type]
    violations = find_violations(log, schema)
    for col, known in (("user", known_users), ("item", known_items)):
        if known is not None and col in log.columns:
            violations += reference_violations(log[col], known, table="interactions", column=col,
                                               parent_table=f"the {col} table")
    if any(v.column in ("user", "item", "*") for v in violations):
        raise_found(violations)  # ids must be sound before they can be mapped
    users, user_ids = _map_ids(log["user"])
    if catalogue_items is None:
        items, item_ids = _map_ids(log["item"])
    else:  # every listed item gets a code, in the same sorted order, interactions or not
        items, item_ids = _map_ids(pd.concat([log["item"], catalogue_items], ignore_index=True))
        items = items[:len(log)]
    rows, n_dup = _unique_pairs(users, items, len(item_ids), log, keep_last=duplicates == "keep_last")
    if n_dup and duplicates == "error":
        dup_rows = _duplicate_rows(users, items, len(item_ids))
        examples = tuple((plain_value(user_ids[users[r]]), plain_value(item_ids[items[r]])) for r in dup_rows[:3])
        violations.append(Violation("interactions", "user+item", "duplicate values of a unique key", n_dup, examples))
    raise_found(violations)
    if n_dup:
        warnings.append(f"duplicates: {n_dup} repeated (user, item) rows replaced by the pair's latest row "
                        "(duplicates: keep_last)")
    frame = pd.DataFrame({"user_id": users[rows], "item_id": items[rows]})
    for col in ("rating", "label", "timestamp"):
        if col in log.columns:
            frame[col] = log[col].to_numpy()[rows]
    return frame, user_ids, item_ids


def _judgments(train: pd.DataFrame, test: pd.DataFrame, n_users: int, n_items: int, *,
               relevance: Mapping[str, Any], split: Mapping[str, Any], cold_start: str,
               warnings: list[str]) -> tuple[pd.DataFrame, dict[str, int], dict[str, np.ndarray]]:
    """Judge the held-out rows, count cold-start users and items, apply the cold-start policy."""
    cold_user, cold_item = _cold_start(train, test, n_users, n_items)
    counts = {"cold_users": int(np.unique(test["user_id"].to_numpy()[cold_user]).size),
              "cold_items": int(np.unique(test["item_id"].to_numpy()[cold_item]).size),
              "judgments_of_cold_users": int(cold_user.sum()), "judgments_of_cold_items": int(cold_item.sum())}
    qrels = pd.DataFrame({"query_id": test["user_id"].to_numpy(), "item_id": test["item_id"].to_numpy(),
                          "relevance": judge(test, relevance)})
    if cold_start == "exclude" and cold_user.any():
        qrels = qrels[~cold_user].reset_index(drop=True)
        warnings.append(f"cold_start: {counts['judgments_of_cold_users']} judgments of {counts['cold_users']} "
                        "users unseen in training were not evaluated (cold_start: exclude)")
    elif cold_start == "only":
        qrels = qrels[cold_user].reset_index(drop=True)
        warnings.append(f"cold_start: only the {counts['cold_users']} users unseen in training are evaluated; "
                        f"{int((~cold_user).sum())} judgments of warm users are not (cold_start: only)")
        if len(qrels) == 0:
            raise DataValidationError(f"cold_start: only: split {dict(split)} leaves no user unseen in training")
    query_ids = np.unique(qrels["query_id"].to_numpy())
    cold_ids = np.unique(test["user_id"].to_numpy()[cold_user])
    segments = {"cold_users": np.intersect1d(query_ids, cold_ids), "warm_users": np.setdiff1d(query_ids, cold_ids)}
    return qrels, counts, segments




def split_categories(ids: pd.Series, labels: pd.Series, separator: str) -> pd.DataFrame:
    """Long ``item``, ``category`` table from a column of separated category lists
    (``"Action|Comedy"``); empty and null lists give no rows."""
    parts = labels.fillna("").astype(str).str.split(separator, regex=False)
    long = pd.DataFrame({"item": ids.to_numpy(), "category": parts.to_numpy()}).explode("category")
    long["category"] = long["category"].astype(str).str.strip()
    return long[long["category"] != ""].reset_index(drop=True)


