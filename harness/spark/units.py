"""Per-unit values kept in Spark: the :class:`~harness.evaluate.units.UnitTable` of the Spark engine.

A config run on a TREC collection's tables (``engine: {kind: spark}``) keeps each
model's per-query metric table in Spark as a :class:`SparkUnits`; the ranking family,
the paired comparison and the results folder read it through the protocol, so no
process but Spark's executors holds per-query values:

- headline values: count, mean and sample standard deviation of every column (NaN
  values left out as ``mean_values`` leaves them out), aggregated with the model's
  means (:func:`moment_columns`), else in one aggregate of their own;
- paired comparisons: the tables joined on the query id in Spark
  (:mod:`harness.spark.paired`: moments for the t-test, Fieller and the skew check,
  Poisson sums for the bootstrap), the candidate ``i`` resampled with seed ``seed + i``
  as locally. The local engine bootstraps at most ``MULTINOMIAL_MAX_UNITS`` paired
  units (20,000) with multinomial weights (a stream of indices Spark cannot split), and
  more with Poisson weights, which Spark draws alike: at most that many paired units,
  their compared values (2 x metrics doubles a unit, under 20,000 rows) come to the
  driver and the local code bootstraps them; above it nothing per unit is collected;
- rows for ``per_unit.parquet``: each partition's Arrow batches serialised in the
  workers and fetched one partition at a time (``toLocalIterator``).
"""

from __future__ import annotations

from functools import reduce
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from harness.datasets.ids import CANONICAL_INT
from harness.errors import ConfigError, DataValidationError
from harness.evaluate.units import Bounds, MetricValue, PairedMean, UnitTable, moment_value
from harness.metrics import _resample
from harness.metrics._names import value_range
from harness.metrics.stats import infer_paired_means

from .paired import METHODS, _joined, paired_means
from .resample import with_positions
from .session import worker_errors

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, Row

UNIT = "unit_id"


def _arrow_batches(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Each Arrow batch of a partition as one row holding its Arrow IPC stream."""
    import pyarrow as pa

    for batch in batches:
        table = pa.Table.from_pandas(batch, preserve_index=False)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        yield pd.DataFrame({"arrow": [sink.getvalue().to_pybytes()], "rows": [len(batch)]})


# a metric's headline moments: count, mean and sample standard deviation of its non-NaN values
Moments = tuple[int, float, float]


def moment_columns(metrics: Sequence[str], where: "Column | None" = None) -> list["Column"]:
    """The aggregates of each metric's :data:`Moments` (over the rows where ``where``;
    NaN values left out, as ``mean_values`` leaves them out), to add to an aggregate the
    table's producer runs anyway, so that :meth:`SparkUnits.headline` costs no job."""
    from pyspark.sql import functions as F

    aggs = []
    for j, metric in enumerate(metrics):
        col = F.col(f"`{metric}`").cast("double")
        keep = ~F.isnan(col) if where is None else where & ~F.isnan(col)
        kept = F.when(keep, col)
        aggs += [F.count(kept).alias(f"n{j}"), F.avg(kept).alias(f"m{j}"), F.stddev_samp(kept).alias(f"s{j}")]
    return aggs


def read_moments(row: "Row", metrics: Sequence[str]) -> dict[str, Moments]:
    """The :data:`Moments` of :func:`moment_columns` from the aggregate's row (a row of
    only those columns, or a mapping of them)."""
    nan = float("nan")
    return {metric: (int(row[f"n{j}"]), nan if row[f"m{j}"] is None else float(row[f"m{j}"]),
                     nan if row[f"s{j}"] is None else float(row[f"s{j}"]))
            for j, metric in enumerate(metrics)}


class SparkUnits:
    """A per-unit table in Spark (see the module docstring).

    Parameters
    ----------
    frame : Spark DataFrame
        ``unit_col``, one double column per metric and, with ``flag``, a boolean column
        true for the units kept but flagged false (ranked: the flagged units are those
        the model ranked nothing for).
    metrics : list of str
        The metric columns.
    n_units, n_flagged : int, optional
        The number of rows and of flagged rows, when known (else counted once).
    release : callable, optional
        Frees what ``frame`` is read from (its persisted values).
    moments, unflagged_moments : mapping metric -> Moments, optional
        The headline moments of the rows, and of the unflagged ones, when the producer
        aggregated them (:func:`moment_columns`); else :meth:`headline` aggregates them.
    """

    def __init__(self, frame: "DataFrame", metrics: Sequence[str], *, unit_col: str = "query_id",
                 flag: str | None = None, n_units: int | None = None, n_flagged: int | None = None,
                 release: Callable[[], None] | None = None, moments: Mapping[str, Moments] | None = None,
                 unflagged_moments: Mapping[str, Moments] | None = None) -> None:
        self.frame = frame
        self.metrics = list(metrics)
        self.unit_col = unit_col
        self.flag = flag
        self._n_units = n_units
        self._n_flagged = n_flagged if flag is not None else 0
        self._release = release
        self._moments = moments
        self._unflagged_moments = unflagged_moments

    # -- UnitTable ------------------------------------------------------------------
    @property
    def columns(self) -> list[str]:
        return list(self.metrics)

    @property
    def n_units(self) -> int:
        if self._n_units is None:
            with worker_errors():
                self._n_units = int(self.frame.count())
        return self._n_units

    def _values(self) -> "DataFrame":
        """``unit_id`` and the metric columns (cast to double)."""
        from pyspark.sql import functions as F

        return self.frame.select(F.col(self.unit_col).alias(UNIT),
                                 *[F.col(f"`{m}`").cast("double").alias(m) for m in self.metrics])

    def headline(self, confidence: float) -> list[MetricValue]:
        if not self.metrics:
            return []
        moments = self._moments
        if moments is None:
            with worker_errors():
                moments = read_moments(self.frame.agg(*moment_columns(self.metrics)).first(), self.metrics)
        return [moment_value(metric, *moments[metric], confidence, value_range(metric)) for metric in self.metrics]

    def n_flagged(self) -> int:
        from pyspark.sql import functions as F

        if self._n_flagged is None and self.flag is not None:
            with worker_errors():
                self._n_flagged = int(self.frame.where(~F.col(self.flag)).count())
        return self._n_flagged or 0

    def flagged_examples(self, limit: int = 3) -> list[object]:
        from pyspark.sql import functions as F

        if self.flag is None:
            return []
        rows = self.frame.where(~F.col(self.flag)).select(self.unit_col).orderBy(self.unit_col).limit(limit).collect()
        return [r[0] for r in rows]

    def without_flagged(self) -> "SparkUnits":
        from pyspark.sql import functions as F

        if self.flag is None:
            return self
        return SparkUnits(self.frame.where(F.col(self.flag)), self.metrics, unit_col=self.unit_col, flag=None,
                          n_units=self.n_units - self.n_flagged(), release=self._release,
                          moments=self._unflagged_moments)

    def like(self, table: pd.DataFrame) -> "SparkUnits":
        """``table`` (indexed by unit id, e.g. a stored run's text ids) in Spark, its ids
        cast to this table's unit id type so that the two join."""
        from pyspark.sql import functions as F

        frame = table.rename_axis(UNIT).reset_index()
        frame[UNIT] = frame[UNIT].astype(str)
        spark = self.frame.sparkSession
        kind = self.frame.schema[self.unit_col].dataType
        sdf = spark.createDataFrame(frame).withColumn(UNIT, F.col(UNIT).cast(kind))
        return SparkUnits(sdf.withColumnRenamed(UNIT, self.unit_col), list(table.columns), unit_col=self.unit_col,
                          n_units=len(table))

    def integer_ids(self) -> bool:
        from pyspark.sql import functions as F
        from pyspark.sql.types import IntegralType

        if isinstance(self.frame.schema[self.unit_col].dataType, IntegralType):
            return True  # the decimal text of a long is canonical
        text = F.col(self.unit_col).cast("string")
        with worker_errors():
            row = self.frame.agg(F.sum((~text.rlike(CANONICAL_INT)).cast("long")).alias("bad")).first()
        return not row["bad"]

    def batches(self) -> Iterator[pd.DataFrame]:
        """Rows in ascending unit id order, one Arrow batch of a partition at a time
        (``spark.sql.execution.arrow.maxRecordsPerBatch`` rows at most); a partition's
        batches reach the driver together, never the whole table."""
        import pyarrow as pa

        from pyspark.sql import functions as F

        ordered = self._values().orderBy(UNIT).withColumn(UNIT, F.col(UNIT).cast("string"))
        with worker_errors():
            for row in ordered.mapInPandas(_arrow_batches, "arrow binary, rows long").toLocalIterator():
                batch = pa.ipc.open_stream(row["arrow"]).read_pandas()
                yield batch.set_index(UNIT)

    def paired_means(self, candidates: Sequence[UnitTable], metrics: Sequence[str], *, common: bool,
                     method: str, confidence: float, n_resamples: int, seed: int,
                     bounds: Mapping[str, Bounds], names: Sequence[str]) -> list[list[PairedMean]]:
        """See :meth:`harness.evaluate.units.UnitTable.paired_means`."""
        from pyspark.sql import functions as F

        if method not in METHODS:
            raise ConfigError(f"compare.method: the Spark engine compares per-unit values kept in Spark with one "
                              f"of {list(METHODS)}, got {method!r} (or use engine kind local)")
        tables = [self, *[self._spark(t) for t in candidates]]
        frames = [t.frame.select(F.col(t.unit_col).alias(UNIT), *[F.col(f"`{m}`") for m in metrics])
                  for t in tables]
        if common:  # the units every table has, as the local intersection of their indexes
            keys = reduce(lambda a, b: a.join(b, UNIT, "inner"), [f.select(UNIT) for f in frames])
            frames = [f.join(keys, UNIT, "left_semi") for f in frames]
        out = []
        for i, frame in enumerate(frames[1:]):
            with worker_errors():
                joined, cached = with_positions(_joined(frames[0], frame, list(metrics), UNIT,
                                                        names=(names[0], names[i + 1])), UNIT)
            try:
                out.append(self._pair(joined, list(metrics), method=method, confidence=confidence,
                                      n_resamples=n_resamples, seed=seed + i, bounds=bounds))
            finally:
                cached.unpersist()
        return out

    def release(self) -> None:
        if self._release is not None:
            self._release()

    # -- helpers --------------------------------------------------------------------
    def _spark(self, table: UnitTable) -> "SparkUnits":
        if isinstance(table, SparkUnits):
            return table
        raise DataValidationError(f"compare: cannot pair per-unit values kept in Spark with a "
                                  f"{type(table).__name__}")

    @staticmethod
    def _pair(joined: "DataFrame", metrics: list[str], *, method: str, confidence: float, n_resamples: int,
              seed: int, bounds: Mapping[str, Bounds]) -> list[PairedMean]:
        """One candidate's inferences: in Spark, or, when the local engine would draw the
        multinomial bootstrap (at most ``MULTINOMIAL_MAX_UNITS`` paired units), by the
        local code on the paired values collected in unit order."""
        m = len(metrics)
        if method != "t_test":
            with worker_errors():
                n = int(joined.count())
            if _resample.resolve_scheme("auto", n) == "multinomial":
                cols = [f"c{j}" for j in range(m)] + [f"b{j}" for j in range(m)]
                with worker_errors():
                    values = joined.orderBy("_position").select(*cols).toPandas().to_numpy(dtype=np.float64)
                if len(values) < 2:
                    raise DataValidationError(f"compare: need at least 2 paired units, got {len(values)}")
                c, b = values[:, :m], values[:, m:]
                absolute, relative = infer_paired_means(
                    c, b, method=method, confidence=confidence, n_resamples=n_resamples, seed=seed,
                    bounds=[bounds.get(name) for name in metrics])
                return [PairedMean(name, float(pd.Series(b[:, j]).mean()), float(pd.Series(c[:, j]).mean()),
                                   absolute[j], relative[j])
                        for j, name in enumerate(metrics)]
        return paired_means(joined, metrics, method=method, confidence=confidence, n_resamples=n_resamples,
                            seed=seed, bounds=bounds)
