"""Where a family's numbers are computed: the backend protocol and the local backend.

A family asks its backend for the two computations that scale with the data: ranking
metrics of a run against the judgments, and off-policy intervals over the logged rows.
The local backend is :mod:`harness.metrics` itself; the Spark backend
(``harness.spark.backend``, chosen by ``engine: {kind: spark}``) implements the same
protocol and returns the same results, so the families, comparisons, results folder and
MLflow never know which one ran. Backends are passed down (by ``harness.apps``), never
imported here: the engine stage stays below the optional Spark package.

A run whose inputs are all tables (a TREC collection scored by ``precomputed`` models)
can also hand the backend the tables' names (:mod:`harness.evaluate.sources`) instead of
their contents, so that a backend that reads where it computes (Spark) never loads them
into this process; the local backend reads them here, with the local loaders.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from harness.evaluate.sources import ScoresSource, SourceCollection, SourceRanking
    from harness.datasets.base import InteractionDataset
    from harness.datasets.experiment import PeriodGroup, UnitStatistics
    from harness.metrics.ab import VariantMoments
    from harness.metrics import OPEInputs
    from harness.metrics.off_policy import OffPolicyEstimator, OPEInterval
    from harness.metrics.ranking import RankingResult
    from harness.types import Ranking


class Backend(Protocol):
    """The computations a family delegates; each has the signature and result of the
    :mod:`harness.metrics` function of the same name."""

    name: str

    def evaluate_ranking(self, qrels: "pd.DataFrame", run: "pd.DataFrame | Ranking", metrics: str | list[str],
                         **options: Any) -> "RankingResult": ...

    def estimate_intervals(self, estimators: Sequence["OffPolicyEstimator"], data: "OPEInputs",
                           **options: Any) -> dict[str, "OPEInterval"]: ...

    def unit_statistics(self, data: str, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                        unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                        window: str | None = None, binary: Sequence[str] = (), counts: Sequence[str] = (),
                        cluster_robust: bool = True) -> "UnitStatistics":
        """An experiment's per-unit table (``data``: where it is stored) reduced to
        sufficient statistics, checked and grouped as
        :func:`harness.datasets.experiment.reduce_units` does."""
        ...

    def unit_periods(self, data: str, *, variant: str, unit: str, window: str, columns: Sequence[str],
                     variants: Sequence[str], groups: Sequence["PeriodGroup"],
                     surface: str | None = None) -> list["VariantMoments"]:
        """Each unit's totals per launch period of a holdout, reduced to moments per
        variant, as :func:`harness.datasets.experiment.reduce_periods` computes them."""
        ...

    def data_fingerprint(self, location: str) -> str | None:
        """A digest of the content of the table at ``location`` (a file, a folder or a
        table the backend reads by name), as it identifies a run's data set."""
        ...

    def describe_collection(self, collection: "SourceCollection") -> "SourceCollection":
        """``collection`` with the id spaces, counts, warnings and fingerprint that
        :func:`harness.datasets.collection.load_trec_collection` gives its tables."""
        ...

    def evaluate_ranking_source(self, collection: "SourceCollection", scores: "ScoresSource",
                                metrics: str | list[str], *, depth: int, **options: Any) -> "SourceRanking":
        """The ranking metrics of the top ``depth`` rows per judged query of a score table
        (score descending, ties by item id), as the local adapter would rank them;
        ``options`` as :func:`harness.metrics.evaluate_ranking`'s (``item_names`` aside:
        the ids are the tables' own)."""
        ...


class LocalBackend:
    """NumPy/numba in this process: :mod:`harness.metrics` as it is."""

    name = "local"

    def evaluate_ranking(self, qrels: "pd.DataFrame", run: "pd.DataFrame | Ranking", metrics: str | list[str],
                         **options: Any) -> "RankingResult":
        from harness.metrics import evaluate_ranking

        return evaluate_ranking(qrels, run, metrics, **options)

    def estimate_intervals(self, estimators: Sequence["OffPolicyEstimator"], data: "OPEInputs",
                           **options: Any) -> dict[str, "OPEInterval"]:
        from harness.metrics.off_policy import estimate_intervals

        return estimate_intervals(estimators, data, **options)

    def unit_statistics(self, data: str, *, variant: str, columns: Sequence[str], variants: Sequence[str],
                        unit: str | None = None, cluster: str | None = None, segment: str | None = None,
                        window: str | None = None, binary: Sequence[str] = (), counts: Sequence[str] = (),
                        cluster_robust: bool = True) -> "UnitStatistics":
        from harness.datasets.experiment import reduce_units

        return reduce_units(data, variant=variant, columns=columns, variants=variants, unit=unit, cluster=cluster,
                            segment=segment, window=window, binary=binary, counts=counts,
                            cluster_robust=cluster_robust)

    def unit_periods(self, data: str, *, variant: str, unit: str, window: str, columns: Sequence[str],
                     variants: Sequence[str], groups: Sequence["PeriodGroup"],
                     surface: str | None = None) -> list["VariantMoments"]:
        from harness.datasets.experiment import reduce_periods

        return reduce_periods(data, variant=variant, unit=unit, window=window, columns=columns, variants=variants,
                              groups=groups, surface=surface)

    def data_fingerprint(self, location: str) -> str | None:
        from harness.datasets.experiment import data_fingerprint

        return data_fingerprint(location)

    def describe_collection(self, collection: "SourceCollection") -> "SourceCollection":
        from dataclasses import replace

        from harness.datasets.ids import id_types

        dataset = _load_collection(collection)
        return replace(collection, n_users=dataset.n_users, n_items=dataset.n_items,
                       n_queries=len(dataset.query_ids), fingerprint=dataset.fingerprint,
                       warnings=list(dataset.warnings), split_stats=dict(dataset.split_stats),
                       id_types=id_types(dataset))

    def evaluate_ranking_source(self, collection: "SourceCollection", scores: "ScoresSource",
                                metrics: str | list[str], *, depth: int, **options: Any) -> "SourceRanking":
        from harness.adapters.retrieval import retrieve_all
        from harness.datasets.ids import id_maps
        from harness.evaluate.sources import SourceRanking
        from harness.metrics import evaluate_ranking
        from harness.models.precomputed import load_precomputed
        from harness.types import PAD_ITEM

        dataset = _load_collection(collection)
        model = load_precomputed(scores.location, dataset=dataset, missing=scores.missing, name=scores.name,
                                 format=scores.format)
        ranking = retrieve_all(scores.name, model, dataset.query_ids, depth, progress=False)
        found = evaluate_ranking(dataset.qrels, ranking, metrics, item_names=dataset.item_ids, **options)
        users = id_maps(dataset)[0]
        found.per_query.index = pd.Index(users.decode(found.per_query.index.to_numpy()), name="query_id")
        unranked = users.decode(np.asarray(ranking.query_ids)[ranking.items[:, 0] == PAD_ITEM])
        relevant = dataset.qrels["relevance"] >= options.get("relevance_threshold", 1)
        n_judged = dataset.qrels["query_id"].nunique()
        return SourceRanking(found, unranked, n_judged - int(relevant.groupby(dataset.qrels["query_id"]).any().sum()))


def _load_collection(collection: "SourceCollection") -> "InteractionDataset":
    """The collection read by the local loader, with every run's ids."""
    from harness.datasets.collection import load_trec_collection

    return load_trec_collection(collection.judgments, name=collection.name,
                                runs={model: (s.location, s.format) for model, s in collection.runs.items()})


LOCAL = LocalBackend()
