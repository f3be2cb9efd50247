"""Predictions computed elsewhere (a Spark job, a service, a TREC run), read and mapped
from the user's own ids to the harness's codes.

Table files (Parquet ``.parquet``/``.pq``, CSV ``.csv``/``.tsv``) have one row per
(query, item): ``query_id``, ``item_id`` and at least one of ``score`` (any finite number,
higher is better) and ``p`` (a probability in [0, 1], for calibration), optionally
``rank`` (1 = best, checked against the scores). TREC run files (``.trec``, ``.run``,
``.txt`` or ``fmt="trec"``) give ``score`` (see ``harness.datasets.trec``).

Ids are the data set's own ids (``IdMap``, integer or string); without maps they are the
codes ``0..n-1`` themselves (synthetic data sets) and must be integers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from .ids import IdMap
from .tables import _column_names, describe_rows, read_table
from .trec import read_trec_run

__all__ = ["TABLE_SUFFIXES", "TREC_SUFFIXES", "prediction_ids", "read_predictions"]

TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".tsv")
TREC_SUFFIXES = (".trec", ".run", ".txt")
FORMATS = ("auto", "table", "trec")


def _read_source(source: str | Path | pd.DataFrame, fmt: str) -> tuple[pd.DataFrame, str, bool]:
    """``(frame, name, is_trec)`` of a file or frame."""
    if fmt not in FORMATS:
        raise ConfigError(f"precomputed: format must be one of {list(FORMATS)}, got {fmt!r}")
    if isinstance(source, pd.DataFrame):
        return source, "predictions", False
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"precomputed: file not found: {path}")
    suffix = path.suffix.lower()
    if fmt == "trec" or (fmt == "auto" and suffix in TREC_SUFFIXES):
        run = read_trec_run(path)
        return run[["query_id", "item_id", "score"]], str(path), True  # trec_eval orders by score, not rank
    if suffix not in TABLE_SUFFIXES:
        raise ConfigError(f"precomputed: {path} must end in {', '.join(TABLE_SUFFIXES)} (tables) or "
                          f"{', '.join(TREC_SUFFIXES)} (TREC run), not {suffix!r}; or set format: trec")
    if suffix in (".parquet", ".pq"):
        return read_table(path), str(path), False
    delimiter = "\t" if suffix == ".tsv" else ","
    ids = [c for c in ("query_id", "item_id") if c in _column_names(path, delimiter)]
    return read_table(path, delimiter=delimiter, id_columns=ids), str(path), False


def _codes(df: pd.DataFrame, col: str, ids: IdMap | None, name: str) -> np.ndarray:
    values = df[col]
    if ids is not None:
        return ids.encode(values, source=name, column=col)
    arr = values.to_numpy()
    if not np.issubdtype(arr.dtype, np.integer):
        raise DataValidationError(f"{name}: column {col!r} must hold integers, got dtype {arr.dtype} "
                                  f"({describe_examples(arr[:3])})")
    if col == "item_id" and (arr < 0).any():
        raise DataValidationError(f"{name}: {int((arr < 0).sum())} negative item ids ({describe_examples(arr[arr < 0])})")
    return arr.astype(np.int64)


def _numeric(df: pd.DataFrame, col: str, name: str) -> np.ndarray:
    values = df[col].to_numpy()
    if not np.issubdtype(values.dtype, np.number) or values.dtype.kind == "b":
        parsed = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        text = ~np.isnan(parsed) | df[col].isna().to_numpy()  # numbers, or gaps that are NaN anyway
        if text.all():  # every value a number, written as text: the table's type, not its values
            raise DataValidationError(
                f"{name}: column {col!r} stores numbers as text (dtype {values.dtype}, "
                f"{describe_examples(pd.unique(values))}); store it as a number type, e.g. "
                f"frame[{col!r}] = frame[{col!r}].astype(float) before writing the table")
        raise DataValidationError(f"{name}: column {col!r} must be numeric, got dtype {values.dtype}: "
                                  f"{int((~text).sum())} value(s) are not numbers "
                                  f"({describe_examples(pd.unique(values[~text]))}; {describe_rows(df, ~text)})")
    out = values.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        raise DataValidationError(f"{name}: column {col!r} has {int(bad.sum())} NaN or infinite values "
                                  f"({describe_rows(df, bad)})")
    return out


def prediction_ids(source: str | Path, fmt: Literal["auto", "table", "trec"] = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The raw ``(query ids, item ids)`` of a score file, distinct, as written (int64 or
    text), before any id map: what a collection built from the file must know.

    Raises
    ------
    ConfigError, DataValidationError
        As ``read_predictions`` for the file and its id columns.
    """
    df, name, _ = _read_source(source, fmt)
    missing = [c for c in ("query_id", "item_id") if c not in df.columns]
    if missing:
        raise DataValidationError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    return pd.unique(df["query_id"].to_numpy()), pd.unique(df["item_id"].to_numpy())


def read_predictions(source: str | Path | pd.DataFrame, *, users: IdMap | None = None,
                     items: IdMap | None = None, fmt: Literal["auto", "table", "trec"] = "auto") -> pd.DataFrame:
    """Read and validate stored predictions, mapping the user's ids to codes.

    Parameters
    ----------
    source : str, Path or DataFrame
        A table file, a TREC run file, or a frame with the table columns.
    users, items : IdMap, optional
        The data set's id maps (``harness.datasets.ids.id_maps(dataset)``); None: the
        ids are codes (integers).
    fmt : {"auto", "table", "trec"}, default "auto"
        ``auto`` decides by the file's suffix.

    Returns
    -------
    DataFrame
        ``query_id``, ``item_id`` (int64 codes), ``score`` and/or ``p`` (float64),
        ``rank`` (int64) when the table has one.

    Raises
    ------
    ConfigError
        Missing file, unknown suffix or format.
    DataValidationError
        Missing columns, empty file, unknown or mistyped ids (file, column, count and
        examples of both sides), NaN/infinite scores, ``p`` outside [0, 1], duplicate
        (query, item) rows, ranks that contradict the scores.
    """
    df, name, _ = _read_source(source, fmt)
    missing = [c for c in ("query_id", "item_id") if c not in df.columns]
    values = [c for c in ("score", "p") if c in df.columns]
    if missing or not values:
        need = missing + ([] if values else ["score"])
        raise DataValidationError(f"{name}: missing column(s) {need}; has {list(df.columns)} (need query_id, "
                                  "item_id and score and/or p)")
    if len(df) == 0:
        raise DataValidationError(f"{name}: is empty (0 rows)")
    q = _codes(df, "query_id", users, name)
    raw_q = df["query_id"].to_numpy()
    out = pd.DataFrame({"query_id": q, "item_id": _codes(df, "item_id", items, name)})
    for col in values:
        out[col] = _numeric(df, col, name)
    if "p" in out.columns:
        p = out["p"].to_numpy()
        bad = (p < 0) | (p > 1)
        if bad.any():
            raise DataValidationError(f"{name}: column 'p' has {int(bad.sum())} values outside [0, 1] "
                                      f"({describe_examples(p[bad])}); probabilities only")
    dup = out.duplicated(["query_id", "item_id"]).to_numpy()
    if dup.any():
        raise DataValidationError(f"{name}: {int(dup.sum())} duplicate (query_id, item_id) rows "
                                  f"({describe_rows(df, dup)})")
    if "rank" in df.columns:
        rank = df["rank"].to_numpy()
        if not np.issubdtype(rank.dtype, np.integer):
            raise DataValidationError(f"{name}: column 'rank' must hold integers, got dtype {rank.dtype} "
                                      f"({describe_examples(rank[:3])})")
        out["rank"] = rank.astype(np.int64)
        _check_ranks(out, name, raw_q)
    return out


def _check_ranks(df: pd.DataFrame, name: str, raw_q: np.ndarray) -> None:
    """Ranks start at 1, are unique per query, and agree with the harness order of scores."""
    rank = df["rank"].to_numpy()
    if (rank < 1).any():
        raise DataValidationError(f"{name}: column 'rank' must be >= 1 ({describe_examples(rank[rank < 1])})")
    dup = df.duplicated(["query_id", "rank"]).to_numpy()
    if dup.any():
        raise DataValidationError(f"{name}: column 'rank' repeats within a query ({describe_examples(raw_q[dup])})")
    if "score" not in df.columns:
        return
    q, s, i = df["query_id"].to_numpy(), df["score"].to_numpy(), df["item_id"].to_numpy()
    by_rank = np.lexsort((rank, q))
    by_score = np.lexsort((i, -s, q))
    if not np.array_equal(by_rank, by_score):
        # metrics order by (score desc, item id asc); a rank column saying otherwise cannot be honoured
        bad_rows = by_rank[by_rank != by_score]
        bad = pd.unique(raw_q[bad_rows])
        raise DataValidationError(f"{name}: column 'rank' disagrees with the order of 'score' (desc, ties by "
                                  f"item id asc) in {len(bad)} queries ({describe_examples(bad)}); fix the "
                                  "scores or drop the rank column")
