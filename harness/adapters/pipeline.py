"""Multi-stage recommenders: retrieval -> ranking -> re-ranking, every stage kept.

``Pipeline([("retrieval", retriever, 500), ("ranking", ranker, 100), ("rerank", mmr, 10)])``
runs the first stage's ``retrieve`` and feeds each later stage the previous stage's
output through ``rank(candidates, k)`` (or a plain function ``f(candidates, k)``).
``run`` returns every stage's ``Ranking`` so that each stage can be evaluated: the
retrieval stage's recall@N is the ceiling of everything after it. Stages are values
(:class:`Stage`), so a pipeline can be assembled from stages of two others to isolate
the effect of one stage of a launch.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd

from harness.types import PAD_ITEM, Ranking, adapter_call, call_retriever, check_ranking
from harness.errors import AdapterError, ConfigError, describe_examples


@dataclass(frozen=True)
class Stage:
    """One stage: a name, a model (retriever first, then rankers or functions) and its k."""

    name: str
    model: Any
    k: int


def _as_stage(spec: Any, position: int) -> Stage:
    if isinstance(spec, Stage):
        return spec
    if not isinstance(spec, tuple) or len(spec) != 3:
        raise ConfigError(f"pipeline stage {position}: expected (name, model, k) or a Stage, got {spec!r}")
    return Stage(*spec)


class Pipeline:
    """A retriever followed by rankers, keeping every stage's output.

    Parameters
    ----------
    stages : sequence of (name, model, k) or Stage
        The first model must have ``retrieve(query_ids, k)``; each later one
        ``rank(candidates, k)`` or be a callable ``f(candidates, k) -> Ranking``. Each
        ``k`` is at most the previous stage's.
    name : str, default "pipeline"
        Used in error messages.
    """

    def __init__(self, stages: Iterable[Any], *, name: str = "pipeline") -> None:
        self.stages: tuple[Stage, ...] = tuple(_as_stage(s, i) for i, s in enumerate(stages))
        self.name = name
        if not self.stages:
            raise ConfigError(f"{name}: needs at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"{name}: stage names must be unique, got {names}")
        prev_k = None
        for i, stage in enumerate(self.stages):
            if not isinstance(stage.name, str) or not stage.name or "/" in stage.name:
                raise ConfigError(f"{name}: stage {i} name must be a non-empty string without '/', "
                                  f"got {stage.name!r}")
            if not isinstance(stage.k, (int, np.integer)) or stage.k < 1:
                raise ConfigError(f"{name}: stage {stage.name!r} k must be a positive integer, got {stage.k!r}")
            if prev_k is not None and stage.k > prev_k:
                raise ConfigError(f"{name}: stage {stage.name!r} keeps k={stage.k} but receives only "
                                  f"{prev_k} candidates")
            prev_k = stage.k
            if i == 0 and not hasattr(stage.model, "retrieve"):
                raise ConfigError(f"{name}: the first stage {stage.name!r} ({type(stage.model).__name__}) "
                                  "must have retrieve(query_ids, k)")
            if i > 0 and not (hasattr(stage.model, "rank") or callable(stage.model)):
                raise ConfigError(f"{name}: stage {stage.name!r} ({type(stage.model).__name__}) must have "
                                  "rank(candidates, k) or be a function f(candidates, k)")

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.stages]

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        for s in self.stages:
            if s.name == name:
                return s
        raise ConfigError(f"{self.name}: no stage {name!r}; stages are {self.names}")

    def replace(self, name: str, model: Any = None, *, k: int | None = None) -> "Pipeline":
        """A new pipeline with stage ``name``'s model and/or k swapped; this one is unchanged."""
        old = self.stage(name)
        new = Stage(name, old.model if model is None else model, old.k if k is None else k)
        return Pipeline([new if s.name == name else s for s in self.stages], name=self.name)

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "Pipeline":
        """Fit every stage model that has ``fit`` (functions have nothing to learn)."""
        for s in self.stages:
            if hasattr(s.model, "fit") and not isinstance(s.model, type):
                with adapter_call(f"{self.name}/{s.name} ({type(s.model).__name__})", "fit", what="stage"):
                    s.model.fit(train, n_users=n_users, n_items=n_items)
        return self

    def run(self, query_ids: np.ndarray) -> dict[str, Ranking]:
        """Every stage's output for ``query_ids``, in stage order, each checked."""
        query_ids = np.asarray(query_ids)
        out: dict[str, Ranking] = {}
        prev: Ranking | None = None
        for s in self.stages:
            out[s.name] = prev = run_stage(s, prev, query_ids, owner=self.name)
        return out

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        """The last stage's top-k (padded when the last stage keeps fewer than k)."""
        return self.run(query_ids)[self.stages[-1].name].padded(k)


def run_stage(stage: Stage, candidates: Ranking | None, query_ids: np.ndarray, *, owner: str) -> Ranking:
    """One stage's checked output: the first stage (``candidates`` None) retrieves for
    ``query_ids``, a later one re-ranks ``candidates``; errors name ``owner/stage``."""
    if candidates is None:
        return call_retriever(stage.model, f"{owner}/{stage.name}", query_ids, stage.k)
    source = f"{owner}/{stage.name} ({type(stage.model).__name__})"
    with adapter_call(source, "rank", what="stage"):
        ranked = stage.model.rank(candidates, stage.k) if hasattr(stage.model, "rank") else stage.model(candidates, stage.k)
    return _check_stage_output(ranked, candidates, stage.k, source=source)


def _check_stage_output(out: Any, candidates: Ranking, k: int, *, source: str) -> Ranking:
    """Shape, order and ids of a ranker's output; it may only re-order its candidates."""
    if not isinstance(out, Ranking):
        raise AdapterError(f"{source}: must return a Ranking, got {type(out).__name__}")
    check_ranking(out.query_ids, out.items, out.scores, source=source)
    if out.k > k:
        raise AdapterError(f"{source}: asked for k={k}, got {out.k} columns")
    if not np.array_equal(np.asarray(out.query_ids), np.asarray(candidates.query_ids)):
        raise AdapterError(f"{source}: must return the queries it was given, in order")
    # every output item must be one of that row's candidates
    width = int(max(candidates.items.max(initial=0), out.items.max(initial=0))) + 2
    # each row sorted, offset by row: the whole is sorted (half the time of one global sort)
    given = (np.sort(candidates.items, axis=1) + 1 + np.arange(len(candidates))[:, None] * width).ravel()
    got = np.arange(len(out))[:, None] * width + out.items + 1
    pos = np.minimum(np.searchsorted(given, got), len(given) - 1)
    foreign = (given[pos] != got) & (out.items != PAD_ITEM)
    if foreign.any():
        rows = np.unique(np.nonzero(foreign)[0])
        raise AdapterError(f"{source}: returned {int(foreign.sum())} items that were not among its candidates "
                           f"in {len(rows)} queries ({describe_examples(np.asarray(out.query_ids)[rows])})")
    return out


def run_stages(name: str, pipeline: Pipeline, query_ids: np.ndarray, *, batch: int = 4096,
               progress: bool = False) -> dict[str, Ranking]:
    """``pipeline.run`` over query batches; errors name the model and the batch."""
    from tqdm.auto import tqdm

    parts: dict[str, list[Ranking]] = {s.name: [] for s in pipeline.stages}
    starts = range(0, len(query_ids), batch)
    for start in tqdm(starts, desc=f"pipeline {name}", unit="batch", disable=not progress,
                      file=sys.stderr, leave=False):
        q = query_ids[start : start + batch]
        try:
            outs = pipeline.run(q)
        except AdapterError as exc:
            raise AdapterError(f"model {name!r}: {exc} (queries {start}..{start + len(q) - 1})") from exc
        for stage, ranking in outs.items():
            parts[stage].append(ranking.padded(pipeline.stage(stage).k))
    return {stage: Ranking.trusted(np.asarray(query_ids), np.concatenate([p.items for p in rs]),
                                   np.concatenate([p.scores for p in rs]))
            for stage, rs in parts.items()}
