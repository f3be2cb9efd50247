"""A/B sufficient statistics on Spark: per variant, n, sum(x) and sum(x*y).

The aggregate is the warehouse query behind ``input: statistics`` of ``harness ab``; its
result is read by :func:`harness.metrics.ab.moments_from_table`, the same reader the
statistics files go through, so the analysis downstream is the local one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from harness.errors import DataValidationError
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
