"""Inputs left where they are: a collection's judgments and its models' score tables,
named (a path or a catalog table) for the backend to read where it computes.

A ``trec`` data set whose models are all score tables (``kind: precomputed``) needs no
model in this process: its ranking metrics are a function of two tables. Under the Spark
engine the run keeps them as sources, the backend describes the collection
(:meth:`~harness.evaluate.backend.Backend.describe_collection`: its id spaces, counts,
warnings and fingerprint, those of the local loader) and measures each model
(:meth:`~harness.evaluate.backend.Backend.evaluate_ranking_source`); only aggregates reach
the driver, the per-query values staying with the backend as a
:class:`~harness.evaluate.units.UnitTable`. Any other data set or model kind is loaded here, as
always (see :func:`collection_sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from harness.evaluate.units import UnitTable
from harness.metrics.ranking import RankingResult
from harness.models.precomputed import display_name
from harness.spec.config import EvalConfig

SETTINGS = {"kind": "trec"}  # the local collection loader's settings (part of the fingerprint)


@dataclass(frozen=True)
class ScoresSource:
    """A ``precomputed`` model's score table (``query_id, item_id, score``), unread.

    ``name`` is how messages name it (the local adapter's name), ``missing`` and
    ``format`` its ``params``.
    """

    location: str
    name: str
    missing: Literal["error", "empty"] = "error"
    format: Literal["auto", "table", "trec"] = "auto"


@dataclass
class SourceCollection:
    """A TREC collection (judgments + the runs' ids) that the backend reads.

    Filled by the backend's ``describe_collection`` with what the local loader
    (:func:`harness.datasets.collection.load_trec_collection`) would report: id-space
    sizes, judged queries, warnings, split counts and the content fingerprint.
    """

    judgments: str
    runs: dict[str, ScoresSource]
    name: str
    settings: dict[str, Any] = field(default_factory=lambda: dict(SETTINGS))
    n_users: int = 0
    n_items: int = 0
    n_queries: int = 0
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)
    split_stats: dict[str, int] = field(default_factory=dict)
    id_types: dict[str, str] = field(default_factory=lambda: {"user": "integer", "item": "integer"})
    # what the engine reads of every data set; a collection has no training data
    train: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"user_id": np.empty(0, np.int64),
                                                                     "item_id": np.empty(0, np.int64)}))
    user_ids: np.ndarray | None = None
    item_ids: np.ndarray | None = None
    candidates: pd.DataFrame | None = None

    def describe(self) -> str:
        """What ``harness validate`` says of a collection it leaves unread."""
        return (f"{self.name}: judgments {self.judgments} and {len(self.runs)} score tables, read by the Spark "
                "engine where it computes (names checked; the tables are read when the run starts)")

    def unjudged_warning(self, n_unjudged: int, examples: list[object]) -> str:
        """The local loader's warning about run queries without judgments."""
        return (f"trec: {n_unjudged} queries of the runs have no judgments in {Path(self.judgments).name} "
                f"(e.g. {', '.join(str(v) for v in examples)}); they are not evaluated, as in trec_eval")


@dataclass
class SourceRanking:
    """One model's ranking metrics from its score table, as the ranking family needs them.

    ``result.per_query`` is indexed by the user's own query ids, in the local order
    (ascending ids); ``unranked`` holds the evaluated queries the table ranks nothing for
    (its ``missing: empty``); ``n_no_relevant`` the judged queries without a relevant item.

    A backend that keeps the per-query values where it computed them returns them as
    ``units`` instead (a :class:`~harness.evaluate.units.UnitTable` of the evaluated
    queries, the unranked ones flagged): ``result.per_query`` and ``unranked`` are then
    empty and ``result`` holds the aggregates only (means, counts, curves).
    """

    result: RankingResult
    unranked: np.ndarray
    n_no_relevant: int
    units: UnitTable | None = None


def collection_sources(config: EvalConfig) -> SourceCollection | None:
    """The run's inputs as sources, when the backend can measure every model from them:
    a ``trec`` data set, every model a score table, only the ranking family, no model
    from a registry (:meth:`~harness.spec.config.EvalConfig.reads_tables`). None
    otherwise (the data set and models are loaded in-process)."""
    spec = config.dataset
    if not config.reads_tables():
        return None  # the local adapter reports what is wrong
    runs = {}
    for name, model in config.models.items():
        params = model.params
        runs[name] = ScoresSource(str(params["path"]), display_name(params["path"], params.get("name")),
                                  missing=params.get("missing", "error"), format=params.get("format", "auto"))
    return SourceCollection(spec.qrels, runs, name=spec.name or f"trec:{Path(spec.qrels).stem}")
