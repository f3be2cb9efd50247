"""Schema layer: every rule raises a DataValidationError naming table, column, count, examples."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.datasets.schema import (Column, Schema, find_violations, interactions_schema, reference_violations,
                                     validate_table)
from harness.errors import DataValidationError, HarnessError

SCHEMA = Schema("ratings", (Column("user", "id"), Column("item", "id"), Column("rating", "number", min=1, max=5),
                            Column("timestamp", "timestamp"), Column("note", "string", required=False,
                                                                     nullable=True)),
                unique=(("user", "item"),))


def clean() -> pd.DataFrame:
    return pd.DataFrame({"user": [1, 1, 2, 3], "item": ["a", "b", "a", "c"], "rating": [5.0, 3.0, 1.0, 4.5],
                         "timestamp": [10, 20, 30, 40]})


def test_clean_table_has_no_violations() -> None:
    assert find_violations(clean(), SCHEMA) == []
    validate_table(clean(), SCHEMA)  # does not raise


def _with(**changes: object) -> pd.DataFrame:
    df = clean()
    for col, values in changes.items():
        df[col] = values
    return df


@pytest.mark.parametrize(
    ("table", "column", "rule", "count", "example"),
    [
        (clean().drop(columns="rating"), "rating", "required column missing", 4, None),
        (_with(rating=["5", "x", "1", "y"]), "rating", "expected number values", 2, "'x'"),
        (_with(rating=[5.0, np.nan, np.nan, 4.0]), "rating", "null values", 2, None),
        (_with(rating=[5.0, 0.0, 6.0, 9.0]), "rating", "values outside [1, 5]", 3, "0.0"),
        (_with(rating=[5.0, np.inf, 3.0, 4.0]), "rating", "infinite values", 1, "inf"),
        (_with(user=[1.5, 1.0, 2.0, 3.0]), "user", "expected id values", 4, None),
        (_with(user=[True, False, True, True]), "user", "expected id values", 4, None),
        (_with(user=[1, 1, 1, 3], item=["a", "a", "a", "c"]), "user+item", "duplicate values of a unique key", 2,
         "(1, 'a')"),
        (_with(timestamp=["2020", "x", "y", "z"]), "timestamp", "expected timestamp values", 3, "'x'"),
        (clean().iloc[:0], "*", "table is empty", 0, None),
    ],
)
def test_each_rule_is_reported(table: pd.DataFrame, column: str, rule: str, count: int, example: str | None) -> None:
    violations = find_violations(table, SCHEMA)
    hits = [v for v in violations if v.column == column and rule in v.rule]
    assert len(hits) == 1, violations
    assert hits[0].count == count
    with pytest.raises(DataValidationError) as info:
        validate_table(table, SCHEMA)
    message = str(info.value)
    assert f"ratings.{column}" in message and f"({count} rows" in message
    if example is not None:
        assert example in message


def test_all_violations_in_one_error() -> None:
    df = _with(rating=[7.0, np.nan, 3.0, 4.0], user=[1, 1, 2, 2], item=["a", "a", "b", "b"])
    with pytest.raises(DataValidationError, match=r"3 data validation error\(s\)") as info:
        validate_table(df, SCHEMA)
    text = str(info.value)
    assert "null values" in text and "outside" in text and "duplicate" in text


def test_error_is_a_harness_value_error() -> None:
    with pytest.raises(HarnessError):
        validate_table(clean().iloc[:0], SCHEMA)
    with pytest.raises(ValueError):
        validate_table(clean().iloc[:0], SCHEMA)


def test_nothing_is_coerced_or_dropped() -> None:
    df = _with(rating=["5", "3", "1", "4"])  # numbers as strings are a dtype error, not silently parsed
    before = df.copy()
    with pytest.raises(DataValidationError, match="expected number values, got dtype"):
        validate_table(df, SCHEMA)
    pd.testing.assert_frame_equal(df, before)


def test_optional_nullable_column() -> None:
    df = _with(note=[None, "x", None, "y"])
    assert find_violations(df, SCHEMA) == []


def test_datetime_timestamps_are_accepted() -> None:
    df = _with(timestamp=pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"]))
    assert find_violations(df, SCHEMA) == []
    df.loc[1, "timestamp"] = pd.NaT
    assert [v.rule for v in find_violations(df, SCHEMA)] == ["null values (row positions shown)"]


def test_reference_violations() -> None:
    out = reference_violations(pd.Series([1, 2, 9, 9, 8]), pd.Series([1, 2, 3]), table="ratings", column="item",
                               parent_table="movies")
    assert len(out) == 1 and out[0].count == 3 and set(out[0].examples) == {9, 8}
    assert reference_violations(pd.Series([1, 2]), pd.Series([1, 2, 3]), table="t", column="c",
                                parent_table="p") == []


def test_interactions_schema_shape() -> None:
    s = interactions_schema(rating=True, timestamp=True, rating_range=(0.5, 5), unique=False)
    assert [c.name for c in s.columns] == ["user", "item", "rating", "timestamp"]
    assert s.unique == ()
    assert interactions_schema().unique == (("user", "item"),)


def test_label_kind_takes_integers_and_booleans() -> None:
    s = interactions_schema(label=True)
    ok = pd.DataFrame({"user": [1, 2], "item": [1, 1], "label": [True, False]})
    assert find_violations(ok, s) == []
    bad = pd.DataFrame({"user": [1, 2], "item": [1, 1], "label": [0.5, 1.0]})
    assert [v.column for v in find_violations(bad, s)] == ["label"]
    neg = pd.DataFrame({"user": [1, 2], "item": [1, 1], "label": [-1, 1]})
    assert "values outside [0, inf]" in find_violations(neg, s)[0].rule


def test_timestamps_as_text_name_the_bad_value_or_say_what_to_write() -> None:
    """A CSV has no time type: its dates arrive as text. The values that are neither numbers
    nor dates are the ones named; when every value is a date, the message says what to
    write instead (before, the first rows were shown, valid dates among them)."""
    mixed = _with(timestamp=["2024-01-01", "2024-01-02T10:00:00", "yesterday", "2024-01-03"])
    [v] = find_violations(mixed, SCHEMA)
    assert (v.column, v.count, v.examples) == ("timestamp", 1, ("yesterday",))
    assert "neither numbers nor ISO 8601 dates" in v.rule
    dates = _with(timestamp=["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"])
    [v] = find_violations(dates, SCHEMA)
    assert v.count == 4 and "write numbers (e.g. Unix seconds), or a Parquet timestamp column" in v.rule
    # dates with and without a zone (a CSV the reader could not read as one time column): the
    # rows without one are counted, one zoned example first (this raised pandas' ValueError)
    zones = _with(timestamp=["2024-01-01T10:00:00Z", "2024-01-02 10:00", "2024-01-03T10:00:00+01:00", "2024-01-04"])
    [v] = find_violations(zones, SCHEMA)
    assert (v.count, v.examples) == (2, ("2024-01-01T10:00:00Z", "2024-01-02 10:00", "2024-01-04"))
    assert "dates with a time zone (2 rows) and without one (2 rows) are not one time scale" in v.rule
