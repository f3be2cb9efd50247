"""One fitted model as the families see it.

The ranking of the data set's judged queries is asked once, at the depth the run
needs (the deepest any configured family reads), restricted to the data set's
candidates when it has some, and shared by every family; pipelines also expose each
stage's ranking. Direct calls (``retrieve`` of other queries, ``predict_proba``) go
through the one adapter-call wrapper, so every failure names the model.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from harness.adapters.pipeline import Pipeline, run_stages
from harness.adapters.retrieval import check_known_items, restrict_to_candidates, retrieve_all
from harness.types import Dataset, PointwiseModel, Ranking, adapter_call, call_retriever, check_probabilities


class ModelView:
    """``model`` (already fitted) named ``name``, evaluated on ``dataset`` to ``depth``."""

    def __init__(self, name: str, model: object, dataset: Dataset, depth: int, *, progress: bool) -> None:
        self.name = name
        self.model = model
        self.dataset = dataset
        self.depth = depth
        self.progress = progress

    @property
    def is_retriever(self) -> bool:
        return hasattr(self.model, "retrieve")

    @property
    def is_pointwise(self) -> bool:
        return isinstance(self.model, PointwiseModel)

    @cached_property
    def stages(self) -> dict[str, Ranking] | None:
        """Each stage's ranking of the judged queries, for pipelines (None otherwise)."""
        if not isinstance(self.model, Pipeline):
            return None
        stages = run_stages(self.name, self.model, self.dataset.query_ids, progress=self.progress)
        for stage, ranking in stages.items():
            check_known_items(self.name, ranking, self.dataset.n_items, stage=stage)
        return stages

    @cached_property
    def ranking(self) -> Ranking:
        """Top-``depth`` of every judged query (the last stage's, for pipelines)."""
        dataset, k = self.dataset, self.depth
        if self.stages is not None:
            ranking = self.stages[list(self.stages)[-1]].padded(k)
        elif dataset.candidates is not None:  # rank the whole catalogue, then judge among candidates
            full = retrieve_all(self.name, self.model, dataset.query_ids, dataset.n_items, progress=self.progress)
            ranking = restrict_to_candidates(full, dataset, k)
        else:
            ranking = retrieve_all(self.name, self.model, dataset.query_ids, k, progress=self.progress)
        check_known_items(self.name, ranking, dataset.n_items)
        return ranking

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        """Top-``k`` of other queries (e.g. the users of a log), checked."""
        ranking = call_retriever(self.model, self.name, query_ids, k)  # type: ignore[arg-type]
        check_known_items(self.name, ranking, self.dataset.n_items)
        return ranking

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """P(positive) of each ``(query_id, item_id)`` row, checked to lie in [0, 1]."""
        with adapter_call(self.name, "predict_proba"):
            p = self.model.predict_proba(pairs)  # type: ignore[attr-defined]
        return check_probabilities(p, len(pairs), source=f"model {self.name!r}")
