"""Declarative table schemas: required columns, dtypes, ranges, nulls, uniqueness, references.

Every loader checks its raw tables here before anything is mapped, split or judged. A
check never drops or coerces a row: it collects every violation of every rule and raises
one ``DataValidationError`` that names, per violation, the table, the column, how many
rows break the rule and a few example values, so that a user can fix the file in one go.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Mapping

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples

# what a column must hold; "id" accepts integer or string ids, "timestamp" numbers or
# datetimes, "label" integers or booleans
Kind = Literal["integer", "number", "string", "id", "timestamp", "label", "any"]


@dataclass(frozen=True)
class Column:
    """One column rule.

    Parameters
    ----------
    name : str
        Column name in the table as loaded.
    kind : {"integer", "number", "string", "id", "timestamp", "label", "any"}
        Allowed dtypes. ``number`` and ``integer`` exclude booleans; ``id`` is integer or
        string; ``label`` is integer or boolean.
    required : bool
        A missing required column is a violation; a missing optional one is not checked.
    nullable : bool
        Whether nulls (None/NaN/NaT) are allowed.
    min, max : float, optional
        Inclusive value range for numeric kinds; numbers must also be finite.
    """

    name: str
    kind: Kind = "any"
    required: bool = True
    nullable: bool = False
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Schema:
    """Rules of one table: its columns and the column sets whose values must be unique."""

    table: str
    columns: tuple[Column, ...]
    unique: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class Violation:
    """One broken rule: where, which rule, how many rows, examples."""

    table: str
    column: str
    rule: str
    count: int
    examples: tuple = field(default=())
    file: str | None = None  # the table's file(s), when it was read from the user's files

    def __str__(self) -> str:
        ex = describe_examples(self.examples)
        return f"{self.where}: {self.rule} ({self.count} rows{'; ' + ex if ex else ''})"

    @property
    def where(self) -> str:
        """``table.column``, or the file and the column as the file names it."""
        if self.file is None:
            return f"{self.table}.{self.column}"
        if self.column == "*":
            return self.file
        names = self.column.split("+")
        return f"{self.file}: column{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"


def in_source(violations: list[Violation], file: str, columns: Mapping[str, str]) -> list[Violation]:
    """The violations of a table read from ``file`` with source columns renamed to the
    canonical ones (``columns``: canonical -> source), named as the user knows them."""
    return [replace(v, file=file, column="+".join(columns.get(c, c) for c in v.column.split("+")))
            for v in violations]


def _dtype_ok(series: pd.Series, kind: Kind) -> bool:
    dt = series.dtype
    is_int = pd.api.types.is_integer_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
    is_num = pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt)
    is_str = pd.api.types.is_string_dtype(dt)
    if kind == "integer":
        return is_int
    if kind == "label":
        return is_int or pd.api.types.is_bool_dtype(dt)
    if kind == "number":
        return is_num
    if kind == "string":
        return is_str
    if kind == "id":
        return is_int or is_str
    if kind == "timestamp":
        return is_num or pd.api.types.is_datetime64_any_dtype(dt)
    return True


def _bad_type_examples(series: pd.Series, kind: Kind) -> tuple[int, tuple]:
    """Rows whose value does not parse as the wanted kind (for a helpful message;
    timestamps as text: :func:`_timestamp_text`)."""
    if kind in ("integer", "number") and not pd.api.types.is_numeric_dtype(series.dtype):
        parsed = pd.to_numeric(series, errors="coerce")
        bad = parsed.isna() & series.notna()
        if bad.any():
            return int(bad.sum()), tuple(series[bad].head(3))
    return len(series), tuple(series.head(3))


def _timestamp_text(series: pd.Series) -> tuple[str, int, tuple]:
    """Timestamps written as text (a CSV has no time type): the values that are neither
    numbers nor dates, or, when all are, what to write instead."""
    text = series.dropna().astype(str)
    numbers = pd.to_numeric(text, errors="coerce").notna()
    # utc=True: dates with and without a zone side by side are each still a date here
    dates = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True).notna()
    bad = ~(numbers | dates)
    if bad.any():
        return "neither numbers nor ISO 8601 dates", int(bad.sum()), tuple(text[bad].head(3))
    # the reader turns a column of dates in one ISO 8601 form into times; these were not
    zoned = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if dates.all() and zoned.any() and not zoned.all():
        examples = (*text[zoned].head(1), *text[~zoned].head(2))
        return (f"dates with a time zone ({int(zoned.sum())} rows) and without one ({int((~zoned).sum())} rows) "
                "are not one time scale: write every date in one form (e.g. all UTC with Z), numbers "
                "(e.g. Unix seconds) or a Parquet timestamp column"), int((~zoned).sum()), examples
    return ("dates as text are not read as times: write numbers (e.g. Unix seconds), or a Parquet "
            "timestamp column"), len(text), tuple(text.head(3))


def _column_violations(df: pd.DataFrame, table: str, col: Column) -> list[Violation]:
    s = df[col.name]
    if not _dtype_ok(s, col.kind):
        rule = f"expected {col.kind} values, got dtype {s.dtype}"
        if col.kind == "timestamp" and not pd.api.types.is_numeric_dtype(s.dtype):
            problem, n, ex = _timestamp_text(s)
            return [Violation(table, col.name, f"{rule}: {problem}", n, ex)]
        n, ex = _bad_type_examples(s, col.kind)
        return [Violation(table, col.name, rule, n, ex)]
    out = []
    null = s.isna().to_numpy()
    if null.any() and not col.nullable:
        rows = np.flatnonzero(null)[:3]
        out.append(Violation(table, col.name, "null values (row positions shown)", int(null.sum()), tuple(rows)))
    if col.kind in ("integer", "number", "timestamp", "label") and pd.api.types.is_numeric_dtype(s.dtype):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(values)
        inf = present & ~np.isfinite(values)
        if inf.any():
            out.append(Violation(table, col.name, "infinite values", int(inf.sum()), tuple(values[inf][:3])))
        low = present & (values < col.min) if col.min is not None else np.zeros(len(s), bool)
        high = present & (values > col.max) if col.max is not None else np.zeros(len(s), bool)
        outside = (low | high) & ~inf
        if outside.any():
            rng = f"[{'-inf' if col.min is None else col.min}, {'inf' if col.max is None else col.max}]"
            out.append(Violation(table, col.name, f"values outside {rng}", int(outside.sum()),
                                 tuple(s.to_numpy()[outside][:3])))
    return out


def find_violations(df: pd.DataFrame, schema: Schema) -> list[Violation]:
    """Every violation of ``schema`` in ``df`` (an empty list when the table is clean)."""
    out: list[Violation] = []
    if len(df) == 0:
        out.append(Violation(schema.table, "*", "table is empty", 0))
    present = set(map(str, df.columns))
    for col in schema.columns:
        if col.name not in present:
            if col.required:
                out.append(Violation(schema.table, col.name,
                                     f"required column missing (columns: {sorted(present)})", len(df)))
            continue
        if len(df):  # an empty table has no values to check (a header-only CSV's columns have no type)
            out.extend(_column_violations(df, schema.table, col))
    for key in schema.unique:
        if not set(key) <= present:
            continue
        dup = df.duplicated(list(key), keep="first").to_numpy()
        if dup.any():
            rows = df.loc[dup, list(key)].head(3)
            examples = tuple(tuple(r) if len(key) > 1 else r[0] for r in rows.itertuples(index=False))
            out.append(Violation(schema.table, "+".join(key), "duplicate values of a unique key",
                                 int(dup.sum()), examples))
    return out


def raise_violations(violations: list[Violation]) -> None:
    """Raise one ``DataValidationError`` listing every violation (no-op when empty)."""
    if violations:
        lines = "\n".join(f"  {v}" for v in violations)
        raise DataValidationError(f"{len(violations)} data validation error(s):\n{lines}")


def validate_table(df: pd.DataFrame, schema: Schema) -> None:
    """Check ``df`` against ``schema``; raise ``DataValidationError`` listing all violations."""
    raise_violations(find_violations(df, schema))


def reference_violations(child: pd.Series, parent: pd.Series, *, table: str, column: str,
                         parent_table: str) -> list[Violation]:
    """Values of ``child`` that do not occur in ``parent`` (a foreign key into another table)."""
    missing = ~child.isin(parent.unique()).to_numpy()
    if not missing.any():
        return []
    values = pd.unique(child.to_numpy()[missing])
    return [Violation(table, column, f"values not found in {parent_table}", int(missing.sum()),
                      tuple(values[:3]))]


def interactions_schema(*, table: str = "interactions", rating: bool = False, label: bool = False,
                        timestamp: bool = False, rating_range: tuple[float | None, float | None] = (None, None),
                        unique: bool = True, ids: Kind = "id") -> Schema:
    """The rules of an interactions table with canonical columns ``user``, ``item`` (of kind
    ``ids``) and optional ``rating`` (finite, in ``rating_range``), ``label`` (integer >= 0
    or boolean) and ``timestamp``; ``(user, item)`` unique unless ``unique=False``."""
    cols = [Column("user", ids), Column("item", ids)]
    if rating:
        cols.append(Column("rating", "number", min=rating_range[0], max=rating_range[1]))
    if label:
        cols.append(Column("label", "label", min=0))
    if timestamp:
        cols.append(Column("timestamp", "timestamp"))
    return Schema(table, tuple(cols), (("user", "item"),) if unique else ())
