"""A TREC collection read by Spark: its tables, id spaces, counts and fingerprint.

What :func:`harness.datasets.collection.load_trec_collection` reports of the judgments
and the runs' score files, computed by Spark aggregates so that no table is loaded by
the driver: the id spaces are the union of every table's ids (integers when every table
stores integers, else text, as locally); the fingerprint is the local one, the judgments
coded into those id spaces, sorted, hashed row by row in the executors and streamed to
the driver one partition at a time.
"""

from __future__ import annotations

from dataclasses import replace
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import pandas as pd

from harness.datasets.base import TableDigest
from harness.datasets.predictions import TABLE_SUFFIXES, TREC_SUFFIXES
from harness.errors import ConfigError, for_model

from .session import read_table, require_columns, worker_errors

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from harness.evaluate.sources import SourceCollection

# files the local engine reads that Spark would have to parse line by line
TEXT_SUFFIXES = tuple(s for s in TABLE_SUFFIXES + TREC_SUFFIXES + (".qrels",) if s not in (".parquet", ".pq"))
JUDGMENTS, SCORES = ["query_id", "item_id", "relevance"], ["query_id", "item_id", "score"]


def check_location(location: str, *, what: str, fmt: str = "auto") -> None:
    """Refuse, without a session, what Spark would not read as a table: text files (CSV,
    TREC qrels and runs: convert them to Parquet) and paths that do not exist (a name
    without a slash or a suffix is taken for a catalog table, checked when read)."""
    path = Path(location)
    text = fmt == "trec" or path.suffix.lower() in TEXT_SUFFIXES or (
        path.is_file() and path.suffix.lower() not in (".parquet", ".pq"))
    if text:
        raise ConfigError(f"{what}: {location} is a text file; the Spark engine reads tables where it computes, "
                          "as Parquet (a file or folder) or a catalog table (db.table): convert it once, e.g. "
                          "harness.datasets.trec.read_trec_run(path).to_parquet(...) or pandas.read_csv(path)"
                          ".to_parquet(...), or use engine kind local")
    if (path.suffix or "/" in location) and not path.exists():
        raise ConfigError(f"{what}: {location}: no such Parquet file or folder")


def check_sources(collection: "SourceCollection") -> None:
    """:func:`check_location` of every table of ``collection`` (``harness validate``)."""
    check_location(collection.judgments, what="judgments")
    for source in collection.runs.values():
        check_location(source.location, what=f"model {source.name}", fmt=source.format)


def read_source(spark: "SparkSession", location: str, *, what: str, columns: list[str],
                fmt: str = "auto") -> "DataFrame":
    """A source table (Parquet file or folder, or ``db.table``) with ``columns`` checked
    and selected; text files (CSV, TREC qrels and runs) are refused with what to do
    instead."""
    check_location(location, what=what, fmt=fmt)
    frame = read_table(spark, location)
    require_columns(frame, columns, location)
    return frame.select(*columns)


class SourceTables:
    """A run's source tables, each read once (:func:`read_source`) and then reused: Spark
    infers a Parquet table's schema with a job each time it reads one, and a run reads
    the judgments and each score table to describe the collection, then again for each
    model. Read anew by each run (its :func:`describe_collection`), so that a session
    that lives on sees the files as they are when a run starts."""

    def __init__(self, spark: "SparkSession") -> None:
        self.spark = spark
        self._frames: dict[tuple[str, str, tuple[str, ...]], "DataFrame"] = {}

    def read(self, location: str, *, what: str, columns: list[str], fmt: str = "auto") -> "DataFrame":
        """:func:`read_source`, once per table, format and columns."""
        key = (location, fmt, tuple(columns))
        if key not in self._frames:
            self._frames[key] = read_source(self.spark, location, what=what, columns=columns, fmt=fmt)
        return self._frames[key]


def _whole_grade(qrels: "DataFrame") -> "Column | None":
    """Whether a row's grade is a whole number (not null, NaN, infinite or a fraction),
    or None when the grade column is not numeric (the ranking kernels' front door
    refuses it, naming the table)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import NumericType

    if not isinstance(qrels.schema["relevance"].dataType, NumericType):
        return None
    grade = F.col("relevance")
    return F.coalesce(~F.isnan(grade) & (F.abs(grade) < float("inf")) & (grade == F.floor(grade)), F.lit(False))


def _negative_grade(qrels: "DataFrame") -> "Column | None":
    """Whether a row's grade is a negative whole number (read as 0), or None when the
    grade column is not numeric."""
    from pyspark.sql import functions as F

    whole = _whole_grade(qrels)
    return None if whole is None else whole & (F.col("relevance") < 0)


def read_judgments(tables: SourceTables, location: str) -> "DataFrame":
    """The judgments table with its negative grades read as 0 (not relevant), as the
    local loader and trec_eval read them."""
    from pyspark.sql import functions as F

    qrels = tables.read(location, what="judgments", columns=JUDGMENTS)
    negative = _negative_grade(qrels)
    if negative is None:
        return qrels
    return qrels.withColumn("relevance", F.when(negative, F.lit(0)).otherwise(F.col("relevance")))


def _check_grades(qrels: "DataFrame", location: str) -> str | None:
    """Refuse grades that are not whole numbers with the local loader's message, and
    return its notice of the negative ones (None if there is none), from one aggregate
    of the table as stored: rows, rows not whole, rows negative and their grades."""
    from pyspark.sql import functions as F

    from harness.datasets.trec import grades_error, negative_grades_notice

    whole, negative = _whole_grade(qrels), _negative_grade(qrels)
    if whole is None or negative is None:
        return None
    counted = qrels.agg(F.count(F.lit(1)), F.sum((~whole).cast("long")), F.sum(negative.cast("long")),
                        F.array_sort(F.collect_set(F.when(negative, F.col("relevance").cast("bigint"))))).first()
    n_rows, n_bad, n_negative, values = counted[0], counted[1] or 0, counted[2] or 0, counted[3]
    if n_bad:
        rows = qrels.where(~whole).select("relevance").limit(3).collect()  # a file's first ones, as locally
        bad = [float("nan") if r[0] is None else r[0] for r in rows]
        raise grades_error(location, n_bad, n_rows, bad)
    return negative_grades_notice(location, n_negative, values) if n_negative else None


def _id_space(frames: list["DataFrame"], column: str) -> tuple["DataFrame", str]:
    """Distinct ids of ``column`` over ``frames`` (column ``id``) and their Spark type:
    bigint when every table stores integers, else string (an integer id then matches its
    decimal text), as the local loader's id spaces."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegralType

    kind = "bigint" if all(isinstance(f.schema[column].dataType, IntegralType) for f in frames) else "string"
    ids = reduce(lambda a, b: a.union(b), [f.select(F.col(column).cast(kind).alias("id")) for f in frames])
    return ids.distinct(), kind


def _codes(spark: "SparkSession", ids: "DataFrame") -> "DataFrame":
    """``id, code``: each id's position in ascending order (the local ``IdMap`` codes)."""
    from pyspark.sql.types import LongType, StructField, StructType

    schema = StructType([ids.schema["id"], StructField("code", LongType(), False)])
    return spark.createDataFrame(ids.orderBy("id").rdd.zipWithIndex().map(lambda r: (r[0][0], r[1])), schema)


def _row_hashes(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    for batch in batches:
        yield pd.DataFrame({"h": [TableDigest.row_hashes(batch.astype(np.int64))]})


def _fingerprint(qrels: "DataFrame", users: "DataFrame", items: "DataFrame", kinds: tuple[str, str],
                 settings: dict[str, object]) -> tuple[str, int]:
    """The local fingerprint of the collection (coded judgments sorted by query and item
    code, an empty training table, the settings), without collecting the judgments; and
    the number of judgment rows streamed."""
    from pyspark.sql import functions as F

    columns = ["query_id", "item_id", "relevance"]
    coded = (qrels.select(F.col("query_id").cast(kinds[0]).alias("q"), F.col("item_id").cast(kinds[1]).alias("i"),
                          F.col("relevance").cast("bigint").alias("relevance"))
             .join(users.withColumnRenamed("id", "q").withColumnRenamed("code", "query_id"), "q")
             .join(items.withColumnRenamed("id", "i").withColumnRenamed("code", "item_id"), "i")
             .select(*columns).orderBy("query_id", "item_id"))
    digest = TableDigest()
    n_bytes = 0

    def streamed() -> Iterator[bytes]:
        nonlocal n_bytes
        for row in coded.mapInPandas(_row_hashes, "h binary").toLocalIterator():
            n_bytes += len(row["h"])
            yield bytes(row["h"])

    digest.add_table("qrels", columns, streamed())
    digest.add_table("train", ["user_id", "item_id"],
                     [pd.DataFrame({"user_id": np.empty(0, np.int64), "item_id": np.empty(0, np.int64)})])
    return digest.hexdigest(settings), n_bytes // 8  # one 8-byte hash a row


def _query_flags(qrels: "DataFrame", runs: list["DataFrame"], kind: str, checked: list[int]) -> "DataFrame":
    """One row per query id of any table (``id``: the id space): ``judged`` (a judgment
    has it) and, for each run k of ``checked``, ``lacking{k}`` (judged, run k has no row
    of it); the tables' ids grouped together, so that their counts are one aggregate,
    without a join (a broadcast job more each). A null id is never judged nor matched,
    as in the joins of the local loader's checks."""
    from pyspark.sql import functions as F

    tagged = reduce(lambda a, b: a.union(b), [t.select(F.col("query_id").cast(kind).alias("id"),
                                                       F.lit(s).alias("_src")) for s, t in enumerate([qrels, *runs])])
    flags = tagged.groupBy("id").agg(F.max(F.col("_src") == 0).alias("_q"),
                                     *[F.max(F.col("_src") == k + 1).alias(f"_r{k}") for k in checked])
    known = F.col("id").isNotNull()
    return flags.select("id", (F.col("_q") & known).alias("judged"),
                        *[(F.col("_q") & ~(F.col(f"_r{k}") & known)).alias(f"lacking{k}") for k in checked])


def _check_missing(collection: "SourceCollection", qrels: "DataFrame", runs: list["DataFrame"], kind: str,
                   n_judged: int, lacking: dict[int, int]) -> None:
    """Refuse, before any model is evaluated, a score table with ``missing: error`` that
    lacks judged queries (``lacking``: their number by table, from :func:`_query_flags`),
    with the local adapter's message: locally every model is built, and so checked,
    before any runs."""
    from pyspark.sql import functions as F

    from harness.models.precomputed import missing_queries_error

    for k, ((model, source), run) in enumerate(zip(collection.runs.items(), runs)):
        if lacking.get(k):
            judged = qrels.select(F.col("query_id").cast(kind).alias("id")).distinct()
            missing = judged.join(run.select(F.col("query_id").cast(kind).alias("id")).distinct(), "id", "left_anti")
            examples = [r["id"] for r in missing.orderBy("id").limit(3).collect()]
            # named as the local engine names it (registry.build_config_model)
            raise for_model(missing_queries_error(source.name, lacking[k], n_judged, examples), model)


def describe_collection(spark: "SparkSession", collection: "SourceCollection",
                        tables: SourceTables | None = None) -> "SourceCollection":
    """``collection`` with what the local loader reports of its tables (see the module),
    read through ``tables`` (default: read here)."""
    from pyspark.sql import functions as F

    tables = tables or SourceTables(spark)
    stored = tables.read(collection.judgments, what="judgments", columns=JUDGMENTS)
    qrels = read_judgments(tables, collection.judgments)
    runs = [tables.read(s.location, what=f"model {s.name}", columns=SCORES, fmt=s.format)
            for s in collection.runs.values()]
    users, user_kind = _id_space([qrels, *runs], "query_id")
    items, item_kind = _id_space([qrels, *runs], "item_id")
    checked = [k for k, source in enumerate(collection.runs.values()) if source.missing == "error"]
    with worker_errors():
        negative_grades = _check_grades(stored, collection.judgments)  # first, as the local loader reads them
        flags = _query_flags(qrels, runs, user_kind, checked)
        counts = flags.agg(F.count(F.lit(1)), F.sum(F.col("judged").cast("long")),
                           *[F.sum(F.col(f"lacking{k}").cast("long")) for k in checked]).first()
        n_users, n_judged, *n_lacking = [int(c or 0) for c in counts]
        n_unjudged = n_users - n_judged
        examples = ([r["id"] for r in flags.where(~F.col("judged")).orderBy("id").limit(3).collect()]
                    if n_unjudged else [])  # in code order: the ids' ascending order
        _check_missing(collection, qrels, runs, user_kind, n_judged, dict(zip(checked, n_lacking)))
        user_codes, item_codes = _codes(spark, users).cache(), _codes(spark, items).cache()
        try:
            fingerprint, n_rows = _fingerprint(qrels, user_codes, item_codes, (user_kind, item_kind),
                                               collection.settings)
            n_items = item_codes.count()
        finally:
            user_codes.unpersist()
            item_codes.unpersist()
    warnings = ([negative_grades] if negative_grades else []) + (
        [collection.unjudged_warning(n_unjudged, examples)] if n_unjudged else [])
    kinds = {"user": "integer" if user_kind == "bigint" else "text", "item": "integer" if item_kind == "bigint" else "text"}
    return replace(collection, n_users=n_users, n_items=n_items, n_queries=n_judged, fingerprint=fingerprint,
                   warnings=warnings, id_types=kinds, split_stats={"train_rows": 0, "test_rows": n_rows, "users_with_test": n_judged,
                                                   "users_without_test": n_unjudged})
