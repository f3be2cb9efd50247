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
per-query metrics stay in Spark (:class:`~harness.spark.units.SparkUnits`): only
aggregates come back, and the comparison and the results folder read the table where it is.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError
from harness.metrics._names import parse_metric_names
from harness.metrics.ranking import (RANKING_METRICS, RankingResult, _curve_specs, _curve_table, _mean,
                                     _std_error)
from harness.types import Ranking

from .ab import unit_periods, unit_statistics
from .collection import SCORES, SourceTables, check_location, describe_collection, read_judgments
from .off_policy import INPUTS, estimate_off_policy
from .ranking import N_REL, RANKED, evaluate_ranking
from .session import read_table, spark_session
from .tables import table_fingerprint
from .units import SparkUnits

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from harness.evaluate.sources import ScoresSource, SourceCollection, SourceRanking
    from harness.metrics import OPEInputs
    from harness.datasets.experiment import PeriodGroup, UnitStatistics
    from harness.metrics.ab import VariantMoments
    from harness.metrics.off_policy import OffPolicyEstimator, OPEInterval
    from harness.spec.config import EngineSpec


class SparkBackend:
    """Ranking metrics and off-policy intervals computed by a Spark session."""

    name = "spark"

    def __init__(self, spark: "SparkSession") -> None:
        self.spark = spark
        self._tables = SourceTables(spark)  # the source tables of the collection described last

    @classmethod
    def from_spec(cls, engine: "EngineSpec") -> "SparkBackend":
        """The session of ``engine`` (the active one if any; pyspark missing: ConfigError)."""
        # A failed job reaches the user once, as a harness error (a worker's bad-data error
        # re-raised by worker_errors) or as the job's own exception; Spark's log of it (a
        # Python traceback per failed or cancelled task) would bury that one line.
        return cls(spark_session(engine.master, app_name=engine.app_name, conf=engine.conf, log_level="FATAL"))

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

    def unit_statistics(self, data: str, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                        unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                        window: str | None = None, binary: Sequence[str] = (), counts: Sequence[str] = (),
                        cluster_robust: bool = True) -> "UnitStatistics":
        """An experiment's per-unit table read and reduced by Spark (checked as locally)."""
        check_location(data, what="A/B data")
        return unit_statistics(read_table(self.spark, data), variant=variant, columns=columns, variants=variants,
                               unit=unit, cluster=cluster, segment=segment, window=window, binary=binary,
                               counts=counts, cluster_robust=cluster_robust, source=data)

    def unit_periods(self, data: str, *, variant: str, unit: str, window: str, columns: Sequence[str],
                     variants: Sequence[str], groups: Sequence["PeriodGroup"],
                     surface: str | None = None) -> list["VariantMoments"]:
        """A holdout's per-unit totals per launch period, aggregated by Spark (checked as locally)."""
        check_location(data, what="A/B data")
        return unit_periods(read_table(self.spark, data), variant=variant, unit=unit, window=window, columns=columns,
                            variants=variants, groups=groups, surface=surface, source=data)

    def data_fingerprint(self, location: str) -> str | None:
        """A file's or folder's bytes, as the local engine digests them; a catalog
        table's content, from Spark (:func:`harness.spark.tables.table_fingerprint`)."""
        from harness.datasets.experiment import data_fingerprint

        if Path(location).exists():
            return data_fingerprint(location)
        return table_fingerprint(read_table(self.spark, location))

    def describe_collection(self, collection: "SourceCollection") -> "SourceCollection":
        """The collection's id spaces, counts, warnings and fingerprint, from Spark."""
        self._tables = SourceTables(self.spark)
        return describe_collection(self.spark, collection, self._tables)

    def evaluate_ranking_source(self, collection: "SourceCollection", scores: "ScoresSource",
                                metrics: str | list[str], *, depth: int, curves: list[str] | None = None,
                                max_k: int | None = None, **options: Any) -> "SourceRanking":
        """One score table's ranking metrics, computed where Spark reads it. The per-query
        values stay in Spark (``SourceRanking.units``, a :class:`SparkUnits` of the
        evaluated queries, the unranked ones flagged); the driver receives aggregates only
        (means, counts, the metric@k curves and their standard errors)."""
        from pyspark.sql import functions as F

        from harness.evaluate.sources import SourceRanking
        from harness.models.precomputed import missing_queries_error

        specs = parse_metric_names(metrics, known=RANKING_METRICS)
        curve_specs = _curve_specs(curves, max_k) if curves else []
        labels = list(dict.fromkeys([s.label for s in specs] + [s.label for s in curve_specs]))
        qrels = read_judgments(self._tables, collection.judgments)
        run = self._tables.read(scores.location, what=f"model {scores.name}", columns=SCORES, fmt=scores.format)
        with _named(collection.judgments, scores.location):
            found = evaluate_ranking(qrels, run, labels, depth=depth, moments=[s.label for s in specs], **options)
        try:
            values = found.cached
            if scores.missing == "error" and found.n_unranked:  # checked before any model, see describe_collection
                examples = [r[0] for r in values.where(~F.col(RANKED)).select("query_id").orderBy("query_id")
                            .limit(3).collect()]
                judged = found.n_queries + found.skipped["no_relevant"]  # evaluated and skipped: every judged query
                raise missing_queries_error(scores.name, found.n_unranked, judged, examples)
            tables = {}
            if curve_specs:  # k x metrics columns per query: aggregated where they are
                means = np.array([found.means[s.label] for s in curve_specs])
                n = found.n_queries
                deviations = _squared_deviations(found.per_query, [s.label for s in curve_specs], means)
                std_errors = np.sqrt(deviations / (n - 1) / n) if n > 1 else np.full(len(means), np.nan)
                tables = {"curves": _curve_table(means[None, :], curve_specs, lambda v: v[0]),
                          "curve_std_errors": _curve_table(std_errors[None, :], curve_specs, lambda v: v[0])}
        except BaseException:
            found.release()
            raise
        # the evaluated queries (those with a relevant item unless no_relevant is zero), the
        # unranked ones flagged; persisted until the run has written its results folder
        keep = values if options.get("no_relevant", "skip") == "zero" else values.where(F.col(N_REL) > 0)
        units = SparkUnits(keep.select("query_id", *[f"`{s.label}`" for s in specs], RANKED),
                           [s.label for s in specs], unit_col="query_id", flag=RANKED, n_units=found.n_queries,
                           n_flagged=found.n_missing_from_run, release=found.release, moments=found.moments,
                           unflagged_moments=found.ranked_moments)
        # the model is asked for the judged queries only (as locally): no run-only query
        empty = pd.DataFrame({s.label: np.empty(0) for s in specs}, index=pd.Index([], name="query_id"))
        result = RankingResult(per_query=empty, means={s.label: found.means[s.label] for s in specs},
                               n_queries=found.n_queries, n_missing_from_run=found.n_missing_from_run,
                               skipped={"no_relevant": found.skipped["no_relevant"], "not_in_qrels": 0}, **tables)
        return SourceRanking(result, np.empty(0), found.n_no_relevant, units=units)


def _squared_deviations(frame: "DataFrame", columns: list[str], means: np.ndarray) -> np.ndarray:
    """``sum_i (x_ij - means_j)^2`` of every column, summed batch by batch in the workers
    (one short array per batch comes back): the second pass of the local sample variance,
    without Spark aggregate expressions, which grow past code generation when there are
    hundreds of curve columns."""
    def batch_sums(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            deviation = batch.to_numpy(dtype=np.float64) - means
            yield pd.DataFrame({"ss": [(deviation * deviation).sum(axis=0)]})

    rows = frame.select(*[f"`{c}`" for c in columns]).mapInPandas(batch_sums, "ss array<double>").collect()
    return np.sum([np.asarray(r["ss"]) for r in rows], axis=0) if rows else np.zeros(len(columns))


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
