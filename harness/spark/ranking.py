"""Ranking metrics on Spark: the local kernel applied to groups of whole queries.

Qrels and run are co-partitioned by a hash bucket of the query id; each bucket (a few
thousand queries, every row of each) is handed as two pandas frames to
:func:`harness.metrics.ranking.prepare` and ``_kernel_values``, the same validation and
compiled one-pass kernel the local engine runs, so every metric, tie mode and id type
has local semantics by construction. Per-query values stay a Spark DataFrame; means,
counts and skipped queries are Spark aggregates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples
from harness.metrics._names import MetricSpec, parse_metric_names
from harness.metrics.ranking import RANKING_METRICS, Gain, Ties, _kernel_values, _validate_run, prepare
from harness.options import check_choice, check_integer

from .session import require_columns, worker_errors
from .units import Moments, moment_columns, read_moments

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

# Rows of the run per bucket: a bucket is one pandas frame in one Python worker.
ROWS_PER_BUCKET = 500_000
N_REL, RANKED = "_n_relevant", "_ranked"


@dataclass
class SparkRankingResult:
    """Per-query values (a Spark DataFrame) and their Spark-aggregated means.

    Attributes mirror :class:`harness.metrics.ranking.RankingResult`: ``per_query`` has
    a ``query_id`` column and one column per metric (evaluated queries only), read from
    persisted values (``release()`` frees them); ``means``, ``n_queries``, ``skipped``
    (``no_relevant``, ``not_in_qrels``) and ``n_missing_from_run`` are plain numbers.
    """

    per_query: "DataFrame"
    means: dict[str, float]
    n_queries: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_missing_from_run: int = 0
    # over every judged query, evaluated or not: those the run ranks nothing for, and those
    # without a relevant item (``skipped["no_relevant"]`` counts them only when skipped)
    n_unranked: int = 0
    n_no_relevant: int = 0
    cached: "DataFrame | None" = field(default=None, repr=False)
    # the headline moments asked for (``moments=``) of the evaluated queries, and of those
    # of them the run ranked
    moments: dict[str, Moments] = field(default_factory=dict)
    ranked_moments: dict[str, Moments] = field(default_factory=dict)

    def release(self) -> None:
        """Unpersist the per-query values."""
        if self.cached is not None:
            self.cached.unpersist()

    def to_pandas(self) -> pd.DataFrame:
        """``per_query`` collected, indexed by ``query_id`` (small data only)."""
        return self.per_query.toPandas().set_index("query_id")


def _top(run: pd.DataFrame, depth: int) -> pd.DataFrame:
    """Each query's first ``depth`` rows by score descending, ties by item id ascending
    (a stored-scores model's ranking), after checking every row: a NaN score or a
    duplicate pair beyond the cut is refused, not cut away."""
    _validate_run(run)
    dup = run.duplicated(["query_id", "item_id"]).to_numpy()
    if dup.any():
        raise DataValidationError(f"run: {int(dup.sum())} duplicate (query_id, item_id) rows "
                                  f"({describe_examples(run['query_id'].to_numpy()[dup])} as query ids)")
    ordered = run.sort_values(["query_id", "score", "item_id"], ascending=[True, False, True], kind="stable")
    return ordered.groupby("query_id", sort=False).head(depth)


def _bucket_values(qrels: pd.DataFrame, run: pd.DataFrame, *, specs: list[MetricSpec], gain: Gain,
                   ties: Ties, threshold: float, id_dtype: np.dtype | None, depth: int | None) -> pd.DataFrame:
    """One bucket's queries: the local kernel's per-query values, the number of relevant
    items and whether the run ranked the query."""
    labels = [s.label for s in specs]
    if depth is not None and not run.empty:
        run = _top(run, depth)
    if qrels.empty:  # only queries the run has and the qrels lack: counted on the driver
        return pd.DataFrame({"query_id": pd.Series([], dtype=id_dtype or object),
                             **{c: pd.Series([], dtype=np.float64) for c in labels},
                             N_REL: pd.Series([], dtype=np.int64), RANKED: pd.Series([], dtype=bool)})
    run = run[run["query_id"].isin(qrels["query_id"].unique())]
    if run.empty:  # nothing of the bucket ranked: every query scores 0, as locally
        dup = qrels.duplicated(["query_id", "item_id"])
        if dup.any():
            raise DataValidationError(f"qrels: duplicate (query_id, item_id) rows in "
                                      f"{qrels.loc[dup, 'query_id'].nunique()} queries "
                                      f"(queries {describe_examples(qrels.loc[dup, 'query_id'].unique())})")
        relevant = (qrels["relevance"] >= threshold).groupby(qrels["query_id"], sort=False).sum()
        return pd.DataFrame({"query_id": relevant.index.to_numpy(),
                             **{c: np.zeros(len(relevant)) for c in labels},
                             N_REL: relevant.to_numpy(dtype=np.int64), RANKED: np.zeros(len(relevant), bool)})
    prep = prepare(qrels, run, ties=ties)
    values, n_rel = _kernel_values(prep, specs, gain=gain, ties=ties, threshold=threshold)
    values[n_rel == 0] = 0.0
    out = pd.DataFrame(values, columns=labels)
    out.insert(0, "query_id", prep.query_ids)
    out[N_REL] = n_rel.astype(np.int64)
    out[RANKED] = np.diff(prep.run_offsets) > 0
    return out


def _check_id_types(qrels: "DataFrame", run: "DataFrame") -> None:
    from pyspark.sql.types import IntegralType, StringType

    for col in ("query_id", "item_id"):
        kinds = {name: frame.schema[col].dataType for name, frame in (("qrels", qrels), ("run", run))}
        ok = all(isinstance(t, IntegralType) for t in kinds.values()) or all(
            isinstance(t, StringType) for t in kinds.values())
        if not ok:
            raise DataValidationError(f"{col}: qrels has {kinds['qrels'].simpleString()} ids and the run "
                                      f"{kinds['run'].simpleString()} ids; both must be integers or both strings")


def _run_ids(qrels: "DataFrame", run: "DataFrame") -> dict[str, int]:
    """The run's rows (``rows``, to size the buckets), its distinct query ids (``n``) and
    those of them no judgment has (``run_only``): one aggregate of the two tables' query
    ids grouped together (no join: a join of small tables costs a broadcast job more). A
    null id is never judged, as in a join."""
    from pyspark.sql import functions as F

    tagged = run.select("query_id", F.lit(1).alias("_rows"), F.lit(False).alias("_judged")).unionByName(
        qrels.select("query_id", F.lit(0).alias("_rows"), F.col("query_id").isNotNull().alias("_judged")))
    per_query = tagged.groupBy("query_id").agg(F.sum("_rows").alias("rows"), F.max("_judged").alias("judged"))
    ranked = F.col("rows") > 0
    row = per_query.agg(F.sum("rows").alias("rows"), F.sum(ranked.cast("long")).alias("n"),
                        F.sum((ranked & ~F.col("judged")).cast("long")).alias("run_only")).first()
    return {name: int(row[name] or 0) for name in ("rows", "n", "run_only")}


@contextmanager
def _released_on_error(frame: "DataFrame") -> Iterator[None]:
    """Unpersist ``frame`` if the block fails (bad data found by a worker): a failed call
    leaves nothing cached in a session that lives on (a notebook, a service)."""
    try:
        yield
    except BaseException:
        frame.unpersist()
        raise


def evaluate_ranking(qrels: "DataFrame", run: "DataFrame", metrics: str | list[str], *, gain: Gain = "linear",
                     ties: Ties = "stable", relevance_threshold: int = 1, no_relevant: str = "skip",
                     depth: int | None = None, n_buckets: int | None = None,
                     moments: Sequence[str] = ()) -> SparkRankingResult:
    """:func:`harness.metrics.evaluate_ranking` on Spark DataFrames.

    Parameters
    ----------
    qrels : Spark DataFrame
        ``query_id``, ``item_id``, ``relevance`` (integers >= 0).
    run : Spark DataFrame
        ``query_id``, ``item_id``, ``score``; ids of the same kind (integer or string) as
        the qrels'.
    metrics, gain, ties, relevance_threshold, no_relevant
        As in :func:`harness.metrics.evaluate_ranking` (same formulas: the same kernel).
    depth : int, optional
        Evaluate each query's top ``depth`` rows of the run only (score descending, ties
        by item id ascending: what a ``precomputed`` model returns when asked for its top
        ``depth``); every row is still checked (NaN scores, duplicate pairs). Default:
        the whole run, as :func:`harness.metrics.evaluate_ranking`.
    n_buckets : int, optional
        Groups of queries, each evaluated in one Python worker; default: one per
        ``ROWS_PER_BUCKET`` run rows, at least the session's default parallelism x 2.
    moments : metrics, optional
        Metrics whose headline moments (:func:`harness.spark.units.moment_columns`) are
        aggregated with the means, over the evaluated queries and over those of them the
        run ranked: what a :class:`~harness.spark.units.SparkUnits` of the values would
        otherwise aggregate in a job of its own.

    Returns
    -------
    SparkRankingResult
        ``per_query`` stays distributed (and persisted); means are Spark averages over
        the evaluated queries.
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, DoubleType, LongType, StructField, StructType

    specs = parse_metric_names(metrics, known=RANKING_METRICS)
    check_choice(no_relevant, ("skip", "zero"), name="no_relevant")
    check_choice(ties, ("stable", "trec_eval", "average"), name="ties")
    if depth is not None:
        check_integer(depth, name="depth", minimum=1)
    require_columns(qrels, ["query_id", "item_id", "relevance"], "qrels")
    require_columns(run, ["query_id", "item_id", "score"], "run")
    _check_id_types(qrels, run)
    qrels = qrels.select("query_id", "item_id", "relevance")
    run = run.select("query_id", "item_id", "score")
    spark = run.sparkSession
    with worker_errors():
        ids = _run_ids(qrels, run)
    if ids["n"] == 0:
        raise DataValidationError("run: is empty (0 rows)")
    if ids["run_only"] == ids["n"]:
        raise DataValidationError(f"run: none of its {ids['n']} query ids appears in qrels; check the "
                                  f"id types ({run.schema['query_id'].dataType.simpleString()} vs "
                                  f"{qrels.schema['query_id'].dataType.simpleString()})")
    if n_buckets is None:
        floor = 2 * spark.sparkContext.defaultParallelism
        n_buckets = max(floor, math.ceil(ids["rows"] / ROWS_PER_BUCKET))
    bucket = F.pmod(F.hash("query_id"), F.lit(int(n_buckets)))
    id_type = qrels.schema["query_id"].dataType
    schema = StructType([StructField("query_id", id_type, False),
                         *[StructField(s.label, DoubleType(), False) for s in specs],
                         StructField(N_REL, LongType(), False), StructField(RANKED, BooleanType(), False)])
    fn = partial(_bucket_values, specs=specs, gain=gain, ties=ties, threshold=float(relevance_threshold),
                 id_dtype=np.dtype(np.int64) if id_type.simpleString() in ("bigint", "int") else None, depth=depth)
    values = (qrels.withColumn("_bucket", bucket).groupBy("_bucket")
              .cogroup(run.withColumn("_bucket", bucket).groupBy("_bucket"))
              .applyInPandas(lambda q, r: fn(q.drop(columns="_bucket"), r.drop(columns="_bucket")), schema))
    values = values.persist(StorageLevel.MEMORY_AND_DISK)  # aggregated here, read again as per_query
    keep = F.lit(True) if no_relevant == "zero" else (F.col(N_REL) > 0)
    labels = [s.label for s in specs]
    by_rows = {"moments": keep, "ranked_moments": keep & F.col(RANKED)} if moments else {}
    with worker_errors(), _released_on_error(values):
        row = values.agg(
            F.count(F.lit(1)).alias("n_all"),
            F.sum((~keep).cast("long")).alias("skipped"),
            F.sum(keep.cast("long")).alias("n_eval"),
            F.sum((~F.col(RANKED) & keep).cast("long")).alias("missing"),
            F.sum((~F.col(RANKED)).cast("long")).alias("unranked"),
            F.sum((F.col(N_REL) == 0).cast("long")).alias("no_relevant"),
            *[F.avg(F.when(keep, F.col(f"`{c}`"))).alias(f"m{j}") for j, c in enumerate(labels)],
            *[F.struct(*moment_columns(moments, where)).alias(name) for name, where in by_rows.items()]).first()
    if row["n_all"] == 0:
        values.unpersist()
        raise DataValidationError("qrels: is empty (0 rows)")
    means = {c: float("nan") if row[f"m{j}"] is None else float(row[f"m{j}"]) for j, c in enumerate(labels)}
    return SparkRankingResult(per_query=values.where(keep).drop(N_REL, RANKED), means=means,
                              n_queries=int(row["n_eval"] or 0),
                              skipped={"no_relevant": int(row["skipped"] or 0), "not_in_qrels": int(ids["run_only"])},
                              n_missing_from_run=int(row["missing"] or 0), n_unranked=int(row["unranked"] or 0),
                              n_no_relevant=int(row["no_relevant"] or 0), cached=values,
                              **{name: read_moments(row[name], moments) for name in by_rows})
