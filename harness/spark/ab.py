"""A/B sufficient statistics on Spark: per variant, n, sum(x) and sum(x*y).

The aggregate is the warehouse query behind ``input: statistics`` of ``harness ab``; its
result is read by :func:`harness.metrics.ab.moments_from_table`, the same reader the
statistics files go through, so the analysis downstream is the local one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from harness.errors import DataValidationError, describe_examples
from harness.metrics.ab import VariantMoments, _cross_name, moments_from_table

from .session import require_columns, worker_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def ab_moments(units: "DataFrame", columns: Sequence[str], *, variant: str = "variant",
               variants: Sequence[str] | None = None) -> list[VariantMoments]:
    """Per-variant moments of per-unit ``columns`` (one row per unit), as
    :func:`harness.metrics.ab.variant_moments` computes them locally.

    ``sums[j] = sum_i x_ij`` and ``cross[j, k] = sum_i x_ij x_ik`` for every pair
    (squares included), one Spark aggregation; ``variants`` orders the result (default:
    sorted) and every named variant must have units.
    """
    from pyspark.sql import functions as F

    columns = list(columns)
    require_columns(units, [variant, *columns], "A/B units")
    pairs = [(a, b) for i, a in enumerate(columns) for b in columns[i:]]
    aggs = [F.count(F.lit(1)).alias("n"),
            *[F.sum(F.col(f"`{c}`").cast("double")).alias(f"sum({c})") for c in columns],
            *[F.sum(F.col(f"`{a}`").cast("double") * F.col(f"`{b}`").cast("double")).alias(_cross_name(a, b))
              for a, b in pairs]]
    with worker_errors():
        nulls = units.agg(*[F.sum(F.col(f"`{c}`").isNull().cast("long")).alias(c) for c in columns]).first()
        bad = {c: nulls[c] for c in columns if nulls[c]}
        if bad:
            raise DataValidationError(f"A/B units: missing values in {bad} (column: rows)")
        table = units.groupBy(F.col(variant).cast("string").alias("variant")).agg(*aggs).toPandas()
    names = list(variants) if variants is not None else sorted(table["variant"])
    absent = [v for v in names if v not in set(table["variant"])]
    if absent:
        raise DataValidationError(f"A/B units: no units in variant(s) {absent}; have {sorted(table['variant'])}")
    table = table.set_index("variant").loc[names].reset_index()
    return moments_from_table(table, source="Spark A/B aggregate")


def unit_moments(units: "DataFrame", *, variant: str, columns: Sequence[str], variants: Sequence[str],
                 unit: str | None = None, binary: Sequence[str] = (), source: str) -> tuple[list[VariantMoments], int]:
    """:func:`ab_moments` of a per-unit experiment table after the checks
    :func:`harness.datasets.experiment.check_units` makes locally (same refusals: metric
    columns numeric and finite, proportions 0/1, variants all configured and all
    present, unit ids unique), in one Spark pass; returns the moments in ``variants``'
    order and the number of rows."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    cols = list(dict.fromkeys(columns))
    require_columns(units, [variant, *cols, *([unit] if unit else [])], source)
    for col in cols:
        kind = units.schema[col].dataType
        if not isinstance(kind, (NumericType, BooleanType)):
            raise DataValidationError(f"{source}: column {col!r} is not numeric (type {kind.simpleString()})")
    label = F.col(variant).cast("string")
    value = {c: F.col(f"`{c}`").cast("double") for c in cols}
    checks = [F.count(F.lit(1)).alias("_rows"),
              F.sum((~label.isin(list(variants)) | label.isNull()).cast("long")).alias("_unknown"),
              *[F.sum((value[c].isNull() | F.isnan(value[c]) | (F.abs(value[c]) == float("inf"))).cast("long"))
                .alias(f"_bad{j}") for j, c in enumerate(cols)],
              *[F.sum((~value[c].isin(0.0, 1.0)).cast("long")).alias(f"_off{j}") for j, c in enumerate(cols)
                if c in binary],
              *([F.countDistinct(F.col(f"`{unit}`")).alias("_units")] if unit else [])]
    with worker_errors():
        row = units.agg(*checks).first()
        if not row["_rows"]:
            raise DataValidationError(f"{source}: no rows")
        if row["_unknown"]:
            bad = [r[0] for r in units.select(label).where(~label.isin(list(variants)) | label.isNull())
                   .distinct().limit(3).collect()]
            raise DataValidationError(f"{source}: column {variant!r} has {row['_unknown']} row(s) of variant(s) "
                                      f"not in the config ({describe_examples(bad)}); configured: {list(variants)}")
        for j, c in enumerate(cols):
            if row[f"_bad{j}"]:
                raise DataValidationError(f"{source}: column {c!r} has {row[f'_bad{j}']} missing/NaN/inf value(s)")
            if c in binary and row[f"_off{j}"]:
                raise DataValidationError(f"{source}: proportion column {c!r} must be 0/1; {row[f'_off{j}']} "
                                          "row(s) are not")
        if unit and row["_units"] != row["_rows"]:
            raise DataValidationError(f"{source}: column {unit!r} has {row['_rows'] - row['_units']} duplicated "
                                      "unit id(s); one row per unit")
        return ab_moments(units.select(F.col(f"`{variant}`").alias("variant"), *cols), cols,
                          variants=variants), int(row["_rows"])
