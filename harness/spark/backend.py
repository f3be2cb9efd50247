"""The Spark engine of a config run (``engine: {kind: spark}``): the evaluate stage's
:class:`~harness.evaluate.backend.Backend` protocol on Spark.

A family hands its inputs (the judgments and a model's ranking, or the logged rows with
the policy's probabilities) to this backend as it would to the local one; they go to
Spark as DataFrames, the per-unit values are computed there by
:mod:`harness.spark.ranking` and :mod:`harness.spark.off_policy`, and the result comes
back in the local result types, with per-unit rows in the local order, so that the
comparison, gate, results folder and MLflow are those of a local run, number for number.

A run whose inputs are tables (:mod:`harness.evaluate.sources`: a collection's judgments
and its models' score tables) is read here by Spark, never by the driver: the collection
is described by Spark aggregates (:mod:`harness.spark.collection`) and each model's
ranking metrics come back as one row per query.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError
from harness.metrics._names import parse_metric_names
from harness.metrics.ranking import (RANKING_METRICS, RankingResult, _curve_specs, _curve_table, _mean,
                                     _std_error)
from harness.types import Ranking

from .collection import describe_collection, read_source
from .off_policy import INPUTS, estimate_off_policy
from .ranking import N_REL, RANKED, evaluate_ranking
from .session import spark_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from harness.evaluate.sources import ScoresSource, SourceCollection, SourceRanking
    from harness.metrics import OPEInputs
    from harness.metrics.off_policy import OffPolicyEstimator, OPEInterval
    from harness.spec.config import EngineSpec


class SparkBackend:
    """Ranking metrics and off-policy intervals computed by a Spark session."""

    name = "spark"

    def __init__(self, spark: "SparkSession") -> None:
        self.spark = spark

    @classmethod
    def from_spec(cls, engine: "EngineSpec") -> "SparkBackend":
        """The session of ``engine`` (the active one if any; pyspark missing: ConfigError)."""
        return cls(spark_session(engine.master, app_name=engine.app_name, conf=engine.conf))

    def evaluate_ranking(self, qrels: pd.DataFrame, run: "pd.DataFrame | Ranking", metrics: str | list[str], *,
                         curves: list[str] | None = None, max_k: int | None = None,
                         item_names: np.ndarray | None = None, **options: Any) -> RankingResult:
        """:func:`harness.metrics.evaluate_ranking`, computed in Spark (same arguments)."""
        specs = parse_metric_names(metrics, known=RANKING_METRICS)
        curve_specs = _curve_specs(curves, max_k) if curves else []
        run_frame = (run.to_frame() if isinstance(run, Ranking) else run)[["query_id", "item_id", "score"]]
        qrels = qrels[["query_id", "item_id", "relevance"]]
        if item_names is not None and options.get("ties") == "trec_eval":
            # trec_eval breaks ties by the user's own item ids: ship those, not the codes
            names = np.asarray(item_names)
            qrels = qrels.assign(item_id=names[qrels["item_id"].to_numpy()])
            run_frame = run_frame.assign(item_id=names[run_frame["item_id"].to_numpy()])
        labels = list(dict.fromkeys([s.label for s in specs] + [s.label for s in curve_specs]))
        found = evaluate_ranking(self.spark.createDataFrame(qrels), self.spark.createDataFrame(run_frame), labels,
                                 **options)
        table = found.to_pandas()
        found.release()
        # the local order of units (first appearance in the qrels), so that a paired
        # bootstrap over them draws the same resamples
        order = pd.unique(qrels["query_id"].to_numpy())
        table = table.loc[order[pd.Index(order).isin(table.index)]]
        per_query = table[[s.label for s in specs]]
        per_query.index.name = "query_id"
        tables = {}
        if curve_specs:
            values = table[[s.label for s in curve_specs]].to_numpy()
            tables = {"curves": _curve_table(values, curve_specs, _mean),
                      "curve_std_errors": _curve_table(values, curve_specs, _std_error)}
        return RankingResult(per_query=per_query, means={s.label: found.means[s.label] for s in specs},
                             n_queries=found.n_queries, skipped=found.skipped,
                             n_missing_from_run=found.n_missing_from_run, **tables)

    def estimate_intervals(self, estimators: Sequence["OffPolicyEstimator"], data: "OPEInputs", *,
                           resampling: str = "multinomial", **options: Any) -> dict[str, "OPEInterval"]:
        """:func:`harness.metrics.off_policy.estimate_intervals`, computed in Spark; a
        bootstrap must be the Poisson one (Spark draws each weight from (seed, b, i))."""
        if options.get("method") == "bootstrap" and resampling != "poisson":
            raise ConfigError("the Spark engine's bootstrap is the Poisson bootstrap (resampling='poisson'); "
                              f"got {resampling!r}")
        frame = pd.DataFrame({c: getattr(data, c) for c in INPUTS if getattr(data, c, None) is not None})
        found = estimate_off_policy(self.spark.createDataFrame(frame), estimators, **options)
        found.release()
        return found.intervals

    def describe_collection(self, collection: "SourceCollection") -> "SourceCollection":
        """The collection's id spaces, counts, warnings and fingerprint, from Spark."""
        return describe_collection(self.spark, collection)

    def evaluate_ranking_source(self, collection: "SourceCollection", scores: "ScoresSource",
                                metrics: str | list[str], *, depth: int, curves: list[str] | None = None,
                                max_k: int | None = None, **options: Any) -> "SourceRanking":
        """One score table's ranking metrics, computed where Spark reads it; the driver
        receives one row per judged query (metrics only: curves are Spark aggregates)."""
        from pyspark.sql import functions as F

        from harness.evaluate.sources import SourceRanking
        from harness.models.precomputed import missing_queries_error

        specs = parse_metric_names(metrics, known=RANKING_METRICS)
        curve_specs = _curve_specs(curves, max_k) if curves else []
        labels = list(dict.fromkeys([s.label for s in specs] + [s.label for s in curve_specs]))
        qrels = read_source(self.spark, collection.judgments, what="judgments")
        run = read_source(self.spark, scores.location, what=f"model {scores.name}", fmt=scores.format)
        with _named(collection.judgments, scores.location):
            found = evaluate_ranking(qrels, run, labels, depth=depth, **options)
            counts = found.cached.agg(F.count(F.lit(1)).alias("judged"),
                                      F.sum((F.col(N_REL) == 0).cast("long")).alias("no_relevant"),
                                      F.sum((~F.col(RANKED)).cast("long")).alias("unranked")).first()
        try:
            unranked = found.cached.where(~F.col(RANKED)).select("query_id").orderBy("query_id")
            if scores.missing == "error" and counts["unranked"]:
                examples = [r[0] for r in unranked.limit(3).collect()]
                raise missing_queries_error(scores.name, int(counts["unranked"]), int(counts["judged"]), examples)
            per_query = found.per_query.select("query_id", *[f"`{s.label}`" for s in specs]).toPandas()
            per_query = per_query.sort_values("query_id", kind="stable").set_index("query_id")  # the local order
            tables = {}
            if curve_specs:
                cols = [s.label for s in curve_specs]
                row = found.per_query.agg(*[F.avg(F.col(f"`{c}`")) for c in cols],
                                          *[F.stddev_samp(F.col(f"`{c}`")) for c in cols]).first()
                stats = np.array([np.nan if v is None else v for v in row], dtype=np.float64).reshape(2, len(cols))
                n = found.n_queries
                stats[1] = stats[1] / np.sqrt(n) if n > 1 else np.nan
                tables = {"curves": _curve_table(stats[:1], curve_specs, lambda v: v[0]),
                          "curve_std_errors": _curve_table(stats[1:], curve_specs, lambda v: v[0])}
            ids = unranked.toPandas()["query_id"].to_numpy() if counts["unranked"] else np.empty(0, object)
        finally:
            found.release()
        # the model is asked for the judged queries only (as locally): no run-only query
        result = RankingResult(per_query=per_query, means={s.label: found.means[s.label] for s in specs},
                               n_queries=found.n_queries, n_missing_from_run=found.n_missing_from_run,
                               skipped={"no_relevant": found.skipped["no_relevant"], "not_in_qrels": 0}, **tables)
        return SourceRanking(result, ids, int(counts["no_relevant"]))


@contextmanager
def _named(judgments: str, scores: str) -> Iterator[None]:
    """Data errors of the kernels name the table they are about (``run:`` and ``qrels:``
    in the kernels' words) by its path or catalog name."""
    try:
        yield
    except DataValidationError as exc:
        text = str(exc)
        for prefix, name in (("run:", scores), ("qrels:", judgments)):
            if text.startswith(prefix):
                raise DataValidationError(f"{name}:{text[len(prefix):]}") from None
        raise
