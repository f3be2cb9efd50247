"""Per-unit results written back as Parquet, in the results folder's long format."""

from __future__ import annotations

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
