"""Interaction logs from Parquet/CSV with a column mapping, and the data set of a config's
``dataset`` section (``dataset_from_spec``: kinds ``interactions`` and ``movielens``).

Building the ``InteractionDataset`` from a loaded log lives in ``datasets.build``, which
this module and ``datasets.movielens`` both import (so neither imports the other's
caller: no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from harness.errors import ConfigError, DataValidationError

from .base import InteractionDataset
from .build import COLD_START_POLICIES, DUPLICATE_POLICIES, build_dataset, split_categories
from .movielens import load_movielens_dataset
from .schema import Column, Schema, Violation, find_violations, raise_violations
from .tables import read_table

__all__ = ["CANONICAL", "COLD_START_POLICIES", "DUPLICATE_POLICIES", "build_dataset", "dataset_from_spec",
           "describe_dataset", "load_interactions", "read_table", "split_categories"]

CANONICAL = ("user", "item", "rating", "label", "timestamp")


# ----------------------------------------------------------------------------- reading
def load_interactions(paths: str | Path | Sequence[str | Path], *, columns: Mapping[str, str],
                      delimiter: str | None = None) -> pd.DataFrame:
    """Read one or more interaction files and rename the mapped columns to the canonical
    names ``user``, ``item``, ``rating``, ``label``, ``timestamp``.

    ``columns`` maps canonical name -> source column; ``user`` and ``item`` are required.
    Only mapped columns are read. In CSV files user and item ids are text unless every id
    is a canonical integer (so ``"007"`` is never turned into ``7``).
    """
    unknown = set(columns) - set(CANONICAL)
    if unknown:
        raise ConfigError(f"columns: unknown canonical names {sorted(unknown)}; known: {', '.join(CANONICAL)}")
    for need in ("user", "item"):
        if need not in columns:
            raise ConfigError(f"columns: a mapping for {need!r} is required (e.g. {need}: {need}_id)")
    files = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not files:
        raise ConfigError("path: at least one interactions file is required")
    source = list(columns.values())
    if len(set(source)) != len(source):
        raise ConfigError(f"columns: each canonical column needs its own source column, got {dict(columns)}")
    ids = [columns["user"], columns["item"]]
    frames = [read_table(f, delimiter=delimiter, columns=source, id_columns=ids)
              .rename(columns={v: k for k, v in columns.items()}) for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


# ----------------------------------------------------------------------------- config
def _feature_table(spec: Mapping[str, Any] | None, key: str,
                   default_id: str) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """A feature table spec ``{path, id_column?, category_column?, category_separator?}`` ->
    (features keyed by raw ``key``, long categories table or None). The id column defaults
    to the interactions' own column name for that id (``default_id``)."""
    if spec is None:
        return None, None
    id_col = spec.get("id_column") or default_id
    table = read_table(spec["path"], id_columns=[id_col])
    violations: list[Violation] = find_violations(
        table, Schema(f"{key} features", (Column(id_col, "id"),), ((id_col,),)))
    raise_violations(violations)
    table = table.rename(columns={id_col: key})
    cats = None
    cat_col = spec.get("category_column")
    if cat_col is not None:
        if cat_col not in table.columns:
            raise DataValidationError(f"{spec['path']}: category_column {cat_col!r} not found "
                                      f"(columns: {list(table.columns)})")
        cats = split_categories(table[key], table[cat_col], spec.get("category_separator", "|"))
    return table, cats


def dataset_from_spec(spec: Mapping[str, Any], *, seed: int) -> InteractionDataset:
    """Build the data set of a config's ``dataset`` section of kind movielens or interactions."""
    spec = dict(spec)
    kind = spec.pop("kind")
    common = {"split": spec.pop("split"), "relevance": spec.pop("relevance"), "seed": seed,
              "cold_start": spec.pop("cold_start", "keep"), "duplicates": spec.pop("duplicates", "error")}
    spec.pop("exclude_seen", None)
    if kind == "movielens":
        return load_movielens_dataset(spec.pop("path"), fmt=spec.pop("format", "auto"), **common)
    if kind != "interactions":
        raise ConfigError(f"dataset.kind {kind!r} is not a file-backed kind (movielens, interactions)")
    columns = {k: v for k, v in spec["columns"].items() if v is not None}  # unmapped keys come as None
    log = load_interactions(spec["path"], columns=columns, delimiter=spec.get("delimiter"))
    item_feats, cats = _feature_table(spec.get("item_features"), "item", columns["item"])
    user_feats, _ = _feature_table(spec.get("user_features"), "user", columns["user"])
    if cats is not None:
        item_feats = item_feats.drop(columns=[spec["item_features"]["category_column"]])  # type: ignore[union-attr]
    paths = spec["path"] if isinstance(spec["path"], list) else [spec["path"]]
    name = spec.get("name") or f"interactions:{Path(paths[0]).stem}"
    files = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (and {len(paths) - 1} more file(s))"
    catalogue = spec.get("catalogue", "interactions")
    settings = {"kind": "interactions", **({"catalogue": catalogue} if catalogue != "interactions" else {})}
    return build_dataset(log, name=name, item_categories=cats, item_features=item_feats,
                         known_items=None if item_feats is None else item_feats["item"],
                         known_users=None if user_feats is None else user_feats["user"],
                         catalogue_items=item_feats["item"] if catalogue == "item_features" else None,
                         source=(files, columns),
                         user_features=user_feats, rating_range=(spec.get("rating_min"), spec.get("rating_max")),
                         settings=settings, **common)  # source column names are not content


def describe_dataset(ds: InteractionDataset) -> str:
    """A few lines on a built data set: sizes, split, cold start, fingerprint, warnings."""
    rel = ds.qrels["relevance"].to_numpy()
    cs = ds.cold_start
    split = ds.settings.get("split")
    # a TREC collection (judgments as given, no split) has queries and documents, not users and items
    users, items = ("query ids", "document ids") if split is None else ("users", "items")
    lines = [f"dataset {ds.name}: {ds.n_users} {users}, {ds.n_items} {items}, {len(ds.train)} train interactions, "
             f"{len(ds.qrels)} judgments ({int((rel >= 1).sum())} relevant) over {len(ds.query_ids)} queries"]
    if split is None:  # judgments given as they are (a TREC collection): no split, no training data
        lines.append(f"  judgments as given, no split; {ds.split_stats.get('users_without_test', 0)} queries of the "
                     f"score files have none; fingerprint {ds.fingerprint}")
    else:
        shown = ", ".join(f"{k}: {v}" for k, v in split.items())
        lines.append(f"  split {{{shown}}}: {ds.split_stats.get('users_with_test', 0)} users with held-out rows, "
                     f"{ds.split_stats.get('users_without_test', 0)} without; cold start: {cs.get('cold_users', 0)} "
                     f"users, {cs.get('cold_items', 0)} items unseen in training; fingerprint {ds.fingerprint}")
    lines += [f"  warning: {w}" for w in ds.warnings]
    return "\n".join(lines)
