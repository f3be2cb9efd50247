"""Unit positions and Poisson-bootstrap sums on Spark, equal to the local bootstrap.

A Poisson bootstrap weight is a pure function of (seed, replicate b, unit position i)
(:mod:`harness.metrics._resample`), so Spark reproduces the local replicates exactly
when every unit gets the position it has locally. :func:`with_positions` numbers the
rows 0..n-1 in their order (file order, or sorted by a unit-id column) without a
single-partition window: each partition's row count, their running total as offsets,
and the record number within the partition. :func:`poisson_sums` draws the weights of
each partition's rows block by block in the Python workers (the same SplitMix64 kernel)
and returns only per-replicate sums, which Spark adds up: no row reaches the driver.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd

from harness.errors import DataValidationError
from harness.metrics._resample import poisson_weights
from harness.options import check_integer

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

POSITION = "_position"
# Units whose weights are drawn at once: (replicates x BLOCK) float64 per block.
BLOCK = 2048
_RECORD_BITS = 33  # monotonically_increasing_id = partition << 33 | record number


def with_positions(frame: "DataFrame", order_by: str | None = None) -> tuple["DataFrame", "DataFrame"]:
    """``frame`` with a ``_position`` column 0..n-1: the rows' order (or their order by
    ``order_by``, which must be unique); and the persisted frame it is read from (so that
    positions never change), to unpersist when done.

    Notes
    -----
    position = offset[p] + r, with p the row's partition, r its record number within p
    (the low 33 bits of ``monotonically_increasing_id``) and offset[p] the number of
    rows of partitions before p: one count per partition reaches the driver.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    if order_by is not None:
        # counted by one aggregate job (a limit scans the partitions in several jobs); the
        # examples only when some repeat
        repeated = frame.groupBy(order_by).count().where(F.col("count") > 1)
        if repeated.agg(F.count(F.lit(1))).first()[0]:
            dup = repeated.limit(3).collect()
            raise DataValidationError(f"{order_by}: unit ids must be unique; {[r[order_by] for r in dup]} repeat")
        frame = frame.orderBy(order_by)
    tagged = (frame.withColumn("_part", F.spark_partition_id())
              .withColumn("_record", F.monotonically_increasing_id().bitwiseAND((1 << _RECORD_BITS) - 1))
              .persist(StorageLevel.MEMORY_AND_DISK))
    counts = dict(tagged.groupBy("_part").count().collect())
    n_parts = max(counts, default=-1) + 1
    offsets = np.concatenate([[0], np.cumsum([counts.get(p, 0) for p in range(n_parts)])])[:-1]
    table = F.array(*[F.lit(int(o)) for o in offsets]) if n_parts else F.array(F.lit(0))
    positioned = tagged.withColumn(POSITION, F.element_at(table, F.col("_part") + 1) + F.col("_record"))
    return positioned.drop("_part", "_record"), tagged


def _partition_sums(batches: Iterator[pd.DataFrame], *, columns: list[str], n_resamples: int,
                    seed: int) -> Iterator[pd.DataFrame]:
    """sum_i w_bi x_i and sum_i w_bi over one partition's rows, for every replicate b."""
    k = len(columns)
    acc = np.zeros((n_resamples, k + 1))
    for batch in batches:
        pos = batch[POSITION].to_numpy(dtype=np.int64)
        x = np.ones((len(pos), k + 1))
        x[:, :k] = batch[columns].to_numpy(dtype=np.float64)
        order = np.argsort(pos, kind="stable")
        pos, x = pos[order], x[order]
        # windows of BLOCK consecutive positions: one weight block each (rows are
        # consecutive within a partition, so a batch spans about len(batch) positions)
        window = (pos - pos[0]) // BLOCK
        cuts = np.flatnonzero(np.diff(window)) + 1
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(pos)]):
            first = int(pos[lo])
            w = poisson_weights(seed, 0, n_resamples, first, int(pos[hi - 1]) - first + 1)
            acc += w[:, pos[lo:hi] - first] @ x[lo:hi]
    yield pd.DataFrame({"b": np.arange(n_resamples), **{f"s{j}": acc[:, j] for j in range(k + 1)}})


def poisson_sums(positioned: "DataFrame", columns: list[str], n_resamples: int, *,
                 seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Weighted column sums under each Poisson replicate: ``sums`` (B, k) = sum_i w_bi
    x_i and ``totals`` (B,) = sum_i w_bi, the arrays
    ``harness.metrics._resample.weighted_sums(..., scheme="poisson")`` returns for the
    rows in ``_position`` order (to float rounding of the sums' order)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    b_total = check_integer(n_resamples, name="n_resamples", minimum=2)
    k = len(columns)
    schema = StructType([StructField("b", LongType(), False),
                         *[StructField(f"s{j}", DoubleType(), False) for j in range(k + 1)]])
    fn = partial(_partition_sums, columns=columns, n_resamples=b_total, seed=int(seed))
    rows = (positioned.select(POSITION, *[F.col(f"`{c}`") for c in columns]).mapInPandas(fn, schema)
            .groupBy("b").agg(*[F.sum(f"s{j}").alias(f"s{j}") for j in range(k + 1)]).toPandas())
    table = rows.sort_values("b").to_numpy()[:, 1:]
    return table[:, :k].copy(), table[:, k].copy()
