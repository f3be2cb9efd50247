"""Reading Parquet and CSV tables through pyarrow, with id columns kept as text unless
every value is a canonical integer (so ``"007"`` never becomes ``7``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples, plain_value

from .ids import CANONICAL_INT

__all__ = ["read_table"]

if TYPE_CHECKING:
    import pyarrow as pa


def _column_names(path: Path, delimiter: str) -> list[str]:
    """Column names of a Parquet file (its schema) or a CSV file (its header)."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import pyarrow as pa

    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return list(pq.read_schema(path).names)
        with pacsv.open_csv(path, parse_options=pacsv.ParseOptions(delimiter=delimiter)) as reader:
            return list(reader.schema.names)
    except (OSError, pa.ArrowInvalid) as exc:  # an empty, truncated or non-table file
        raise unreadable_table(path, exc, []) from None


# Arrow's CSV reader on a cell that is not of its column's type (0-based column number)
_CSV_CELL = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+): invalid value '(.*)'", re.S)


def unreadable_table(path: Path, exc: Exception, names: Sequence[str]) -> DataValidationError:
    """The error for a file Arrow cannot read; a CSV cell that is not a number names its
    column (``names``: the file's columns, in order) instead of Arrow's column number."""
    found = _CSV_CELL.search(str(exc))
    if found and int(found.group(1)) < len(names):
        column, kind, value = names[int(found.group(1))], found.group(2), found.group(3)
        wanted = "integers" if kind.startswith(("int", "uint")) else "numbers" if kind in ("double", "float") else kind
        return DataValidationError(f"{path}: column {column!r} must hold {wanted}; a cell holds {value!r}")
    return DataValidationError(f"{path}: cannot be read as a table: {exc}")


def _canonical_int_ids(table: "pa.Table", names: Sequence[str]) -> "pa.Table":
    """CSV id columns are read as text, so that ``007`` and ``7`` stay two ids; a column whose
    every value is a canonical integer (no sign or leading zeros to lose) becomes int64."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in names:
        col = table[name]
        if col.null_count == 0 and len(col) and \
                pc.all(pc.match_substring_regex(col, CANONICAL_INT)).as_py():
            table = table.set_column(table.schema.get_field_index(name), name, pc.cast(col, pa.int64()))
    return table


def check_ids_present(data: "pa.Table | pa.RecordBatch", id_columns: Sequence[str], source: str | Path, *,
                      row_offset: int = 0) -> None:
    """Refuse a missing id (null, or an empty CSV cell, which the CSV reader gives as the
    text ``""``) in any of ``id_columns``, naming the file, the column, how many rows and
    the first data rows (1 = the first row after a CSV header): an empty id is no id,
    and scored as one it would be a user or an item nobody has."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in id_columns:
        if name not in data.column_names:
            continue
        col = data.column(name)
        missing = pc.is_null(col)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            missing = pc.or_kleene(missing, pc.equal(pc.utf8_trim_whitespace(col), ""))
        missing = pc.fill_null(missing, True)
        n = pc.sum(missing).as_py() or 0
        if n:
            rows = np.flatnonzero(missing.to_numpy(zero_copy_only=False))[:3] + row_offset + 1
            raise DataValidationError(f"{source}: column {name!r} has {n} missing id(s) (empty or null; "
                                      f"row(s) {', '.join(str(r) for r in rows)})")


def missing_labels(labels: pd.Series) -> np.ndarray:
    """Rows without a label (a segment, a variant): null, or text that is empty once
    trimmed (a CSV's empty cell). Vectorised over Arrow strings, no loop over rows."""
    missing = labels.isna().to_numpy().copy()
    if not pd.api.types.is_numeric_dtype(labels.dtype):
        blank = labels.astype("string[pyarrow]").str.strip() == ""
        missing |= blank.fillna(False).to_numpy(dtype=bool)
    return missing


def describe_rows(frame: pd.DataFrame, bad: np.ndarray, *, rows: str = "row") -> str:
    """The first offending rows of a (query_id, item_id) table for a message: their pairs
    in the file's ids and their numbers (1 = the first data row; ``rows="line"`` for
    TREC files, blank lines not counted)."""
    at = np.flatnonzero(bad)[:3]
    pairs = [tuple(map(plain_value, p)) for p in zip(frame["query_id"].to_numpy()[at], frame["item_id"].to_numpy()[at])]
    return (f"{describe_examples(pairs)} as (query_id, item_id); {rows}(s) {', '.join(str(r + 1) for r in at)}"
            + (" (blank lines not counted)" if rows == "line" else ""))


def read_table(path: str | Path, *, delimiter: str | None = None, columns: Sequence[str] | None = None,
               id_columns: Sequence[str] = (), label_columns: Sequence[str] = (),
               encoding: str = "utf8") -> pd.DataFrame:
    """Read a Parquet or CSV file (by suffix) through pyarrow.

    Only ``columns`` are read when given (a missing one is a ``DataValidationError`` that
    lists the file's columns); ``id_columns`` of a CSV file keep their text unless every
    value is a canonical integer, and none may be missing (:func:`check_ids_present`);
    ``label_columns`` (segment names, ...) are kept as text alike, their gaps left to
    the caller's own message. A missing file is a ``ConfigError``.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file not found: {path}")
    is_parquet = path.suffix.lower() in (".parquet", ".pq")
    delim = delimiter or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    names: list[str] = []
    try:
        if columns is not None or id_columns or label_columns:
            names = _column_names(path, delim)
            missing = [c for c in dict.fromkeys([*(columns or ()), *id_columns, *label_columns]) if c not in names]
            if missing:
                raise DataValidationError(f"{path}: columns {missing} not found (columns: {names})")
        if is_parquet:
            table = pq.read_table(path, columns=list(columns) if columns is not None else None)
        else:
            table = pacsv.read_csv(path, read_options=pacsv.ReadOptions(encoding=encoding),
                                   parse_options=pacsv.ParseOptions(delimiter=delim),
                                   convert_options=pacsv.ConvertOptions(
                                       include_columns=list(columns) if columns is not None else None,
                                       column_types={c: pa.string() for c in (*id_columns, *label_columns)}))
            table = _canonical_int_ids(table, (*id_columns, *label_columns))
    except (OSError, pa.ArrowInvalid) as exc:
        raise unreadable_table(path, exc, names or _column_names(path, delim)) from None
    check_ids_present(table, id_columns, path)  # a gap keeps a CSV column text: still seen here
    return table.to_pandas()
