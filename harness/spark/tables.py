"""Tables the Spark engine writes or describes: per-unit results written back as Parquet,
in the results folder's long format, and a catalog table's content fingerprint."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def write_per_unit(per_unit: "DataFrame", path: str | Path, *, family: str, model: str, unit_col: str,
                   mode: str = "overwrite") -> None:
    """Write a wide per-unit table (``unit_col`` + one column per metric) as the long
    table of ``per_unit.parquet`` (``family, model, unit_id, metric, value``), a Parquet
    folder written by the executors (nothing collected)."""
    from pyspark.sql import functions as F

    metrics = [c for c in per_unit.columns if c != unit_col and not c.startswith("_")]
    stacked = F.explode(F.array(*[F.struct(F.lit(m).alias("metric"), F.col(f"`{m}`").cast("double").alias("value"))
                                  for m in metrics])).alias("kv")
    long = (per_unit.select(F.col(unit_col).alias("unit_id"), stacked)
            .select(F.lit(family).alias("family"), F.lit(model).alias("model"), "unit_id", "kv.metric", "kv.value"))
    long.write.mode(mode).parquet(str(Path(path).resolve()))  # relative to this process, not the JVM


def table_fingerprint(frame: "DataFrame") -> str:
    """A digest of a table's content, whatever its storage and row order: its schema, its
    row count and the sum of its rows' 64-bit hashes (``xxhash64`` of every column),
    aggregated by Spark. For a catalog table, which has no file for the local byte
    digest (:func:`harness.datasets.experiment.data_fingerprint`) to read."""
    from pyspark.sql import functions as F

    # summed as decimals: 64-bit hashes over billions of rows overflow a long
    row = frame.agg(F.count(F.lit(1)).alias("n"),
                    F.sum(F.xxhash64(*[F.col(f"`{c}`") for c in frame.columns]).cast("decimal(38,0)"))
                    .alias("h")).first()
    text = f"{frame.schema.simpleString()}|{row['n']}|{row['h']}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
