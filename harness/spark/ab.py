"""A/B sufficient statistics on Spark: per variant, n, sum(x) and sum(x*y).

:func:`ab_moments` is the warehouse query behind ``input: statistics`` of ``harness ab``;
its result is read by :func:`harness.metrics.ab.moments_from_table`, the same reader the
statistics files go through. :func:`unit_statistics` is what ``engine: {kind: spark}``
runs on a per-unit table: :func:`harness.datasets.experiment.reduce_units` (checks,
clusters, segments, time windows) as Spark aggregations. Either way the analysis
downstream is the local one.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import numpy as np

from harness.datasets.experiment import (PeriodGroup, UnitStatistics, launch_period, natural_order,
                                         negative_counts_error, unit_clusters)
from harness.errors import DataValidationError, describe_examples
from harness.metrics.ab import (UNITS, VariantMoments, add_moments, mixed_clusters_error, moments_from_table,
                                moments_table)
from harness.metrics.holdout import ROWS, period_column

from .session import require_columns, worker_errors

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame


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
    with worker_errors():
        nulls = units.agg(*[F.sum(F.col(f"`{c}`").isNull().cast("long")).alias(c) for c in columns]).first()
        bad = {c: nulls[c] for c in columns if nulls[c]}
        if bad:
            raise DataValidationError(f"A/B units: missing values in {bad} (column: rows)")
        found = _group_moments(units, columns, [variant]).get((), {})
    names = list(variants) if variants is not None else sorted(found)
    absent = [v for v in names if v not in found]
    if absent:
        raise DataValidationError(f"A/B units: no units in variant(s) {absent}; have {sorted(found)}")
    # through the statistics table and its reader, as a warehouse query's result would be
    return moments_from_table(moments_table([found[v] for v in names]), source="Spark A/B aggregate")


def _group_moments(frame: "DataFrame", columns: list[str], keys: list[str]
                   ) -> dict[tuple[str, ...], dict[str, VariantMoments]]:
    """Row moments of ``columns`` per value of ``keys`` (the last key the variant, as
    text), one Spark aggregation: ``{other keys' values: {variant: moments}}``."""
    from pyspark.sql import functions as F

    pairs = [(j, k) for j in range(len(columns)) for k in range(j, len(columns))]
    value = [F.col(f"`{c}`").cast("double") for c in columns]
    rows = (frame.groupBy(*[F.col(f"`{k}`").cast("string").alias(f"_k{i}") for i, k in enumerate(keys)])
            .agg(F.count(F.lit(1)).alias("_n"), *[F.sum(v).alias(f"_s{j}") for j, v in enumerate(value)],
                 *[F.sum(value[j] * value[k]).alias(f"_c{j}_{k}") for j, k in pairs]).collect())
    found: dict[tuple[str, ...], dict[str, VariantMoments]] = {}
    for row in rows:  # one row per group and variant: a handful, or one per segment or window
        cross = np.zeros((len(columns), len(columns)))
        for j, k in pairs:
            cross[j, k] = cross[k, j] = row[f"_c{j}_{k}"]
        group = tuple(row[f"_k{i}"] for i in range(len(keys) - 1))
        found.setdefault(group, {})[row[f"_k{len(keys) - 1}"]] = VariantMoments(
            row[f"_k{len(keys) - 1}"], int(row["_n"]), tuple(columns),
            np.array([row[f"_s{j}"] for j in range(len(columns))], dtype=np.float64), cross)
    return found


def _moments(frame: "DataFrame", columns: list[str], keys: list[str], variants: Sequence[str]
             ) -> dict[tuple[str, ...], list[VariantMoments]]:
    """:func:`_group_moments` with each group's variants in ``variants``' order, a variant
    without rows having ``n = 0`` and zero sums, as :func:`harness.metrics.ab.segment_moments`
    gives."""
    empty = VariantMoments("", 0, tuple(columns), np.zeros(len(columns)), np.zeros((len(columns), len(columns))))
    return {g: [part.get(v, dataclasses.replace(empty, variant=v)) for v in variants]
            for g, part in _group_moments(frame, columns, keys).items()}


def _missing_count(frame: "DataFrame", column: str) -> "Column":
    """Rows whose id or label in ``column`` is null or, for text, empty: none, as the
    local reader counts them (``check_ids_present``, ``check_units``)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    col = F.col(f"`{column}`")
    missing = col.isNull()
    if isinstance(frame.schema[column].dataType, StringType):
        missing = missing | (F.trim(col) == "")
    return F.sum(missing.cast("long"))


def _check(units: "DataFrame", *, variant: str, cols: list[str], variants: Sequence[str], unit: str | None,
           window: str | None, labels: Sequence[tuple[str, str | None]], binary: Sequence[str],
           source: str, counts: Sequence[str] = ()) -> int:
    """The refusals of :func:`harness.datasets.experiment.reduce_units` (and
    ``reduce_periods``), in their order and words, from one Spark aggregation (plus a
    lookup of examples when one fails): ``unit`` ids unique (per ``window`` when given),
    no missing value in the ``labels`` columns (``(what, column)``: cluster, segment,
    window, ...); the number of rows."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType

    need = [variant, *cols, *[c for c in (unit, window, *(c for _, c in labels)) if c]]
    missing = [c for c in dict.fromkeys(need) if c not in units.columns]
    if missing:
        raise DataValidationError(f"{source}: column(s) {missing} not found (columns: {units.columns})")
    for col in cols:
        kind = units.schema[col].dataType
        if not isinstance(kind, (NumericType, BooleanType)):
            raise DataValidationError(f"{source}: column {col!r} is not numeric (type {kind.simpleString()})")
    label = F.col(f"`{variant}`").cast("string")
    value = {c: F.col(f"`{c}`").cast("double") for c in cols}
    keyed = [F.col(f"`{unit}`"), *([F.col(f"`{window}`")] if window else [])] if unit else []
    checks = [F.count(F.lit(1)).alias("_rows"), _missing_count(units, variant).alias("_no_variant"),
              F.sum((~label.isin(list(variants)) | label.isNull()).cast("long")).alias("_unknown"),
              *[F.sum((value[c].isNull() | F.isnan(value[c]) | (F.abs(value[c]) == float("inf"))).cast("long"))
                .alias(f"_bad{j}") for j, c in enumerate(cols)],
              *[F.sum((~value[c].isin(0.0, 1.0)).cast("long")).alias(f"_off{j}") for j, c in enumerate(cols)
                if c in binary],
              *[F.sum((value[c] < 0).cast("long")).alias(f"_neg{j}") for j, c in enumerate(cols) if c in counts],
              *([F.countDistinct(*keyed).alias("_units"), _missing_count(units, unit).alias("_no_unit")] if keyed else []),
              *[F.sum(F.col(f"`{c}`").isNull().cast("long")).alias(f"_null_{what}") for what, c in labels if c]]
    row = units.agg(*checks).first()
    if not row["_rows"]:
        raise DataValidationError(f"{source}: no rows")
    if unit and row["_no_unit"]:  # the local reader's refusal; Spark does not number the rows
        raise DataValidationError(f"{source}: column {unit!r} has {row['_no_unit']} missing id(s) (empty or null)")
    if row["_no_variant"]:
        raise DataValidationError(f"{source}: column {variant!r} has {row['_no_variant']} row(s) with no variant "
                                  "(empty or null)")
    if row["_unknown"]:
        bad = [r[0] for r in units.select(label).where(~label.isin(list(variants)) | label.isNull())
               .distinct().limit(3).collect()]
        raise DataValidationError(f"{source}: column {variant!r} has {row['_unknown']} row(s) of variant(s) "
                                  f"not in the config ({describe_examples(bad)}); configured: {list(variants)}")
    for j, c in enumerate(cols):
        if row[f"_bad{j}"]:
            raise DataValidationError(f"{source}: column {c!r} has {row[f'_bad{j}']} NaN/inf value(s)")
        if c in binary and row[f"_off{j}"]:
            raise DataValidationError(f"{source}: proportion column {c!r} must be 0/1; {row[f'_off{j}']} "
                                      "row(s) are not")
    for j, c in enumerate(cols):  # after every column's NaN check, as the local reader
        if c in counts and row[f"_neg{j}"]:
            negative = [r[0] for r in units.select(value[c]).where(value[c] < 0).distinct().orderBy(value[c])
                        .limit(3).collect()]
            raise negative_counts_error(source, c, row[f"_neg{j}"], negative)
    if unit and row["_units"] != row["_rows"]:
        n_dup = row["_rows"] - row["_units"]
        found = [", ".join(str(v) for v in r[:-1]) for r in units.groupBy(*keyed).count()
                 .where(F.col("count") > 1).limit(3).collect()]
        if window:
            raise DataValidationError(f"{source}: {n_dup} duplicated ({unit}, {window}) pair(s) "
                                      f"({describe_examples(found)}); one row per unit and window")
        raise DataValidationError(f"{source}: column {unit!r} has {n_dup} duplicated unit id(s) "
                                  f"({describe_examples(found)}); one row per unit")
    for what, c in labels:
        if c and row[f"_null_{what}"]:
            noun = "id(s)" if what in ("cluster", "unit") else "value(s)"
            raise DataValidationError(f"{source}: {what} column {c!r} has {row[f'_null_{what}']} missing {noun}")
    return int(row["_rows"])


def unit_statistics(units: "DataFrame", *, variant: str, columns: Sequence[str], variants: Sequence[str],
                    unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                    window: str | None = None, binary: Sequence[str] = (), counts: Sequence[str] = (),
                    cluster_robust: bool = True, source: str) -> UnitStatistics:
    """:func:`harness.datasets.experiment.reduce_units` of a per-unit experiment table on
    Spark: the same checks and refusals, then the same sufficient statistics, computed by
    Spark aggregations (only one row per variant, segment or window reaches the driver).

    - per variant (``segment``: per segment and variant, the whole experiment their sum);
    - with ``cluster`` and ``cluster_robust``: per cluster first (each cluster's totals and
      unit count ``UNITS``; a cluster in two variants or segments is refused), then the
      moments of those totals;
    - with ``window``: each window's row moments too (rows are (unit, window) pairs).
    """
    cols = list(dict.fromkeys(columns))
    with worker_errors():
        n_rows = _check(units, variant=variant, cols=cols, variants=variants, unit=unit, window=window,
                        labels=[("cluster", cluster), ("segment", segment), ("window", window)], binary=binary,
                        counts=counts, source=source)
        windows = None
        if window:
            found = _moments(units, cols, [window, variant], variants)
            windows = {g[0]: found[g] for g in sorted(found, key=lambda g: natural_order(g[0]))}
        rows, n_clusters, clustered = units, None, bool(cluster and cluster_robust)
        if clustered:  # one row per cluster, read three times: kept, not recomputed
            rows = _cluster_totals(units, cols, variant=variant, cluster=str(cluster), segment=segment,
                                   unit_label=unit_clusters(unit, cluster))
            n_clusters = rows.count()
            cols = [*cols, UNITS]
        elif cluster:
            n_clusters = units.select(f"`{cluster}`").distinct().count()
        try:
            if segment:
                found = _moments(rows, cols, [segment, variant], variants)
                segments = {g[0]: found[g] for g in sorted(found)}
                moments = [add_moments([part[v] for part in segments.values()]) for v in range(len(variants))]
            else:
                segments, moments = None, _moments(rows, cols, [variant], variants)[()]
        finally:
            if clustered:
                rows.unpersist()
    empty = [m.variant for m in moments if m.n == 0]
    if empty:
        raise DataValidationError(f"{source}: no units in variant(s) {empty}")
    return UnitStatistics(moments, segments, n_rows, n_clusters, clustered, windows)


def _cluster_totals(units: "DataFrame", cols: list[str], *, variant: str, cluster: str,
                    segment: str | None, unit_label: str | None = None) -> "DataFrame":
    """One row per cluster, persisted (the caller unpersists it): its variant (and
    segment), each column's total and its unit count (``UNITS``), as
    :func:`harness.metrics.ab.cluster_totals`; a cluster whose units are in two variants
    (or segments) is refused in its words."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    labels = [(variant, "variant"), *([(segment, "segment")] if segment else [])]
    totals = (units.groupBy(F.col(f"`{cluster}`").alias("_cluster"))
              .agg(*[F.min(F.col(f"`{c}`").cast("string")).alias(c) for c, _ in labels],
                   *[F.countDistinct(F.col(f"`{c}`").cast("string")).alias(f"_kinds_{what}") for c, what in labels],
                   *[F.sum(F.col(f"`{c}`").cast("double")).alias(c) for c in cols],
                   F.count(F.lit(1)).cast("double").alias(UNITS))).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        for _, what in labels:
            _refuse_mixed(totals, what, unit_label)
    except BaseException:
        totals.unpersist()
        raise
    return totals


def _refuse_mixed(totals: "DataFrame", what: str, unit_label: str | None = None) -> None:
    """Refuse, as :func:`harness.metrics.ab.cluster_totals` does, clusters (``_cluster``)
    whose units carry more than one ``what`` (``_kinds_<what>`` distinct values);
    ``unit_label`` names clusters that are each one unit's rows."""
    from pyspark.sql import functions as F

    mixed = totals.where(F.col(f"_kinds_{what}") > 1)
    n_mixed = mixed.count()
    if n_mixed:
        examples = [r[0] for r in mixed.select("_cluster").orderBy("_cluster").limit(3).collect()]
        raise mixed_clusters_error(n_mixed, examples, what, unit_label)


def unit_periods(units: "DataFrame", *, variant: str, unit: str, window: str, columns: Sequence[str],
                 variants: Sequence[str], groups: Sequence[PeriodGroup], surface: str | None = None,
                 source: str) -> list[VariantMoments]:
    """:func:`harness.datasets.experiment.reduce_periods` on Spark: each unit's totals of
    ``columns`` and of its row count (``ROWS``) per group and launch period, as Spark
    aggregates per unit, reduced to one :class:`VariantMoments` per variant over units.

    A window's period in a group is the number of the group's launch starts at or
    before it (natural order); the windows are few, so their periods are computed here
    and handed to Spark as a map from window label to period.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    cols = list(dict.fromkeys(columns))
    keys = {g.label: sorted(natural_order(s) for s in g.starts) for g in groups}
    names = [period_column(c, g.label, p) for c in (*cols, ROWS) for g in groups for p in range(len(g.starts) + 1)]
    label = F.col(f"`{variant}`").cast("string")
    value = {**{c: F.col(f"`{c}`").cast("double") for c in cols}, ROWS: F.lit(1.0)}
    win = F.col(f"`{window}`").cast("string")
    with worker_errors():
        _check(units, variant=variant, cols=cols, variants=variants, unit=None, window=None,
               labels=[("window", window), ("unit", unit), ("surface", surface)], binary=(), source=source)
        windows = [r[0] for r in units.select(win).distinct().collect()]  # a few dozen labels
        sums = {}
        for g in groups:
            period = F.create_map(*[F.lit(x) for w in windows for x in (w, launch_period(keys[g.label], w))])[win]
            mine = (F.lit(True) if g.surface is None or surface is None
                    else F.col(f"`{surface}`").cast("string") == F.lit(g.surface))
            for p in range(len(g.starts) + 1):
                for c in (*cols, ROWS):
                    sums[period_column(c, g.label, p)] = F.sum(F.when(mine & (period == p), value[c])
                                                               .otherwise(0.0))
        per_unit = (units.groupBy(F.col(f"`{unit}`").alias("_cluster"))
                    .agg(F.min(label).alias("_variant"), F.countDistinct(label).alias("_kinds_variant"),
                         *[sums[n].alias(n) for n in names])).persist(StorageLevel.MEMORY_AND_DISK)
        try:  # one row per unit, read twice
            _refuse_mixed(per_unit, "variant", unit_clusters(unit, unit))
            moments = _moments(per_unit, names, ["_variant"], variants)[()]
        finally:
            per_unit.unpersist()
    empty = [m.variant for m in moments if m.n < 2]
    if empty:
        raise DataValidationError(f"{source}: variant(s) {empty} have fewer than 2 units")
    return moments
