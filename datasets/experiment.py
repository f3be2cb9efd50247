"""Per-unit experiment data (one row per user: variant, metric columns, pre-period
covariates, optional unit and cluster ids) read from Parquet/CSV and checked at the door."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples

from .tables import read_table


@dataclass(frozen=True)
class ExperimentUnits:
    """Checked per-unit data: ``values`` (n_units x k, float64) of ``columns``, each
    unit's variant as a code into ``variants``, optional ``clusters`` ids."""

    values: np.ndarray
    columns: tuple[str, ...]
    codes: np.ndarray
    variants: tuple[str, ...]
    clusters: np.ndarray | None
    source: str
    segments: np.ndarray | None = None
    segment_names: tuple[str, ...] = ()


def file_fingerprint(path: str | Path) -> str:
    """sha256 of the file's bytes (first 16 hex digits), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def check_units(frame: pd.DataFrame, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                binary: Sequence[str] = (),
                source: str = "experiment data") -> ExperimentUnits:
    """Check a per-unit table and return its arrays.

    Refused, naming the column, the count and examples: a missing column; a metric column
    that is not numeric or has NaN/inf values; a ``binary`` (proportion) column with
    values other than 0/1; a variant not in ``variants``; a planned variant without units;
    duplicated ``unit`` ids; missing ``cluster`` ids.
    """
    need = [variant, *columns, *[c for c in (unit, cluster, segment) if c]]
    missing = [c for c in dict.fromkeys(need) if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: column(s) {missing} not found (columns: {list(frame.columns)})")
    if len(frame) == 0:
        raise DataValidationError(f"{source}: no rows")
    labels = frame[variant].astype(str).to_numpy()
    names = list(variants)
    known = np.isin(labels, names)
    if not known.all():
        bad = pd.unique(labels[~known])
        raise DataValidationError(f"{source}: column {variant!r} has {int((~known).sum())} row(s) of variant(s) "
                                  f"not in the config ({describe_examples(bad)}); configured: {names}")
    codes = pd.Categorical(labels, categories=names).codes.astype(np.int64)
    empty = [n for n, c in zip(names, np.bincount(codes, minlength=len(names))) if c == 0]
    if empty:
        raise DataValidationError(f"{source}: no units in variant(s) {empty}")
    cols = list(dict.fromkeys(columns))
    for col in cols:
        if not pd.api.types.is_numeric_dtype(frame[col]):  # bool counts as 0/1
            raise DataValidationError(f"{source}: column {col!r} is not numeric (dtype {frame[col].dtype}, "
                                      f"{describe_examples(frame[col].head(3))})")
    values = np.column_stack([frame[c].to_numpy(dtype=np.float64) for c in cols]) if cols else np.zeros((len(frame), 0))
    bad = ~np.isfinite(values)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        rows = np.flatnonzero(bad[:, j])
        raise DataValidationError(f"{source}: column {cols[j]!r} has {rows.size} NaN/inf value(s), e.g. at row(s) "
                                  f"{rows[:3].tolist()}")
    for col in binary:
        v = values[:, cols.index(col)]
        off = (v != 0) & (v != 1)
        if off.any():
            raise DataValidationError(f"{source}: proportion column {col!r} must be 0/1; {int(off.sum())} row(s) "
                                      f"are not ({describe_examples(np.unique(v[off]))})")
    if unit:
        dup = frame[unit][frame[unit].duplicated()]
        if len(dup):
            raise DataValidationError(f"{source}: column {unit!r} has {len(dup)} duplicated unit id(s) "
                                      f"({describe_examples(pd.unique(dup))}); one row per unit")
    clusters = None
    if cluster:
        ids = frame[cluster]
        if ids.isna().any():
            raise DataValidationError(f"{source}: cluster column {cluster!r} has {int(ids.isna().sum())} missing id(s)")
        clusters = ids.to_numpy()
    segments, segment_names = None, ()
    if segment:
        labels = frame[segment]
        if labels.isna().any():
            raise DataValidationError(f"{source}: segment column {segment!r} has {int(labels.isna().sum())} "
                                      "missing value(s)")
        cat = pd.Categorical(labels.astype(str))
        segments, segment_names = cat.codes.astype(np.int64), tuple(str(c) for c in cat.categories)
    return ExperimentUnits(values, tuple(cols), codes, tuple(names), clusters, source, segments, segment_names)


def load_units(path: str | Path, **kwargs) -> ExperimentUnits:
    """Read a Parquet/CSV file of per-unit experiment data and :func:`check_units` it
    (only the needed columns are read)."""
    ids = [kwargs[k] for k in ("unit", "cluster", "segment") if kwargs.get(k)]
    need = [kwargs["variant"], *kwargs["columns"], *ids]
    id_cols = [kwargs["variant"], *ids]
    frame = read_table(path, columns=list(dict.fromkeys(need)), id_columns=id_cols)
    return check_units(frame, source=str(path), **kwargs)
