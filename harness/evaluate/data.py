"""The run's data set, built from ``config.dataset``: synthetic, MovieLens, the user's
interaction files or a TREC collection; and the segments of its queries."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.errors import say
from harness.evaluate.backend import Backend
from harness.evaluate.sources import SourceCollection, collection_sources
from harness.spec.attribution import ACTIVITY, POPULARITY, SegmentsSpec
from harness.spec.config import EvalConfig
from harness.types import Dataset


def load_dataset(config: EvalConfig, backend: Backend | None = None) -> Dataset | SourceCollection:
    """Build the data set named by ``config.dataset``, with its candidate set if any.

    Given the run's ``backend`` (the Spark engine's), a collection whose models are all
    score tables is not loaded: it stays a
    :class:`~harness.evaluate.sources.SourceCollection` that the backend describes and
    later measures where it reads the tables.
    """
    collection = collection_sources(config) if backend is not None else None
    if collection is not None:
        collection = backend.describe_collection(collection)
        for warning in collection.warnings:
            say(f"WARNING: dataset: {warning}")
        return collection
    from harness.datasets import make_synthetic

    spec = config.dataset.model_dump(by_alias=True)
    candidates = spec.pop("candidates", None)
    if config.dataset.kind in ("movielens", "interactions"):  # file-backed: loaded, checked, split, judged
        from harness.datasets.interactions import dataset_from_spec

        dataset = dataset_from_spec(spec, seed=config.seed)
    elif config.dataset.kind == "trec":  # judgments only: the runs' ids join the collection
        from harness.datasets.collection import load_trec_collection

        runs = {name: (m.params["path"], m.params.get("format", "auto")) for name, m in config.models.items()
                if m.kind == "precomputed" and "path" in m.params}
        dataset = load_trec_collection(spec["qrels"], runs=runs, name=spec.get("name"))
    else:
        spec.pop("kind")
        dataset = make_synthetic(**spec, seed=config.seed)
    if candidates is not None and candidates["kind"] != "full":
        dataset = _with_candidates(dataset, candidates)
    for warning in dataset.warnings:
        say(f"WARNING: dataset: {warning}")
    return dataset


def dataset_summary(dataset: Dataset | SourceCollection) -> dict[str, Any]:
    """The ``dataset`` block of ``results.json``: what was evaluated, and its fingerprint."""
    n_queries = dataset.n_queries if isinstance(dataset, SourceCollection) else len(dataset.query_ids)
    return {"name": dataset.name, "fingerprint": dataset.fingerprint, "settings": dataset.settings,
            "n_users": dataset.n_users, "n_items": dataset.n_items, "n_queries": n_queries,
            "id_types": id_types(dataset),
            **{key: getattr(dataset, key) for key in ("warnings", "cold_start", "split_stats")
               if getattr(dataset, key, None)}}


def id_types(dataset: Dataset | SourceCollection) -> dict[str, str]:
    """``{"user": kind, "item": kind}``, kind ``"integer"`` or ``"text"``: how the data
    stores its ids, and so how ``per_unit.parquet`` writes them (text ids that look
    like numbers stay text, to join the user's own text column)."""
    if isinstance(dataset, SourceCollection):
        return dict(dataset.id_types)
    from harness.datasets.ids import id_types as stored_id_types

    return stored_id_types(dataset)


def _with_candidates(dataset: Dataset, spec: dict[str, Any]) -> Dataset:
    from harness.datasets.candidates import with_candidates

    table = None
    if spec["kind"] == "given":
        from harness.datasets.interactions import load_interactions

        table = load_interactions(spec["path"], columns={"user": spec["user"], "item": spec["item"]})
    settings = {k: v for k, v in spec.items() if v is not None}
    return with_candidates(dataset, settings, table)


def load_segments(spec: SegmentsSpec, dataset: Dataset) -> tuple[pd.Series, str]:
    """The segment of every query of ``dataset`` (by its own id, see
    :func:`harness.datasets.segments.unit_keys`) and a description of where it came from.

    Checked here, before any model runs, so that ``validate`` refuses what ``attribute``
    would: every query must have a segment unless ``missing: separate``.
    """
    from harness.datasets.ids import id_maps
    from harness.datasets.segments import activity_segments, read_segments, segment_labels, taste_segments

    users = dataset.train["user_id"].to_numpy()
    if spec.by == ACTIVITY:
        edges = spec.bucket_edges()
        segments = activity_segments(users, dataset.n_users, dataset.user_ids, edges)
        source = f"training interactions per user, cut at {edges}"
    elif spec.by == POPULARITY:
        edges = spec.bucket_edges()
        segments = taste_segments(users, dataset.train["item_id"].to_numpy(), dataset.n_users, dataset.n_items,
                                  dataset.user_ids, edges)
        source = f"mean popularity percentile of each user's training items, cut at {edges}"
    else:
        segments = read_segments(str(spec.path), by=spec.by, id_column=spec.id_column)
        source = str(spec.path)
    queries = pd.Index(id_maps(dataset)[0].decode(dataset.query_ids))
    segment_labels(queries, segments, side="evaluated", source=source, missing=spec.missing)
    return segments, source
