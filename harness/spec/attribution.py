"""``attribution:``: which stage of a pipeline moved a metric (``harness attribute``).

The block names a baseline and a candidate ``kind: pipeline`` model with the same stage
names; gate criteria may name an attribution term (``shapley/<stage>/<metric>``, see
:class:`harness.metrics.attribution.AttributionTerm`), decided by ``harness attribute``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.metrics.attribution import DEFAULT_PERMUTATIONS, MAX_EXACT_PLAYERS, AttributionTerm, parse_term
from harness.options import check_confidence
from harness.spec.base import Strict


ACTIVITY = "activity"
POPULARITY = "popularity"
BUILT_IN_SEGMENTS = (ACTIVITY, POPULARITY)


class SegmentsSpec(Strict):
    """``attribution.segments``: which segment moved each metric (within-segment vs mix shift).

    ``by: activity`` buckets users by their training interactions at ``edges`` (cold /
    warm / heavy users by default); ``by: popularity`` by how popular the items they
    interacted with are (the mean popularity percentile of their training items, cut at
    the percentiles ``edges``: niche / middle / mainstream taste by default, ``[33, 67]``);
    any other ``by`` is a column of the table at ``path``
    (CSV or Parquet) whose ``id_column`` holds the unit ids in the data's own ids (a
    surface, a cohort, a market). ``missing: error`` refuses units without a segment;
    ``missing: separate`` puts them in a segment of their own (counted in the notes).
    """

    by: str = Field(..., min_length=1)
    path: str | None = None
    id_column: str = "unit_id"
    edges: list[int] | None = Field(None, min_length=1)
    missing: Literal["error", "separate"] = "error"

    @model_validator(mode="after")
    def _source(self) -> "SegmentsSpec":
        if self.by in BUILT_IN_SEGMENTS:
            if self.path is not None:
                raise ValueError(f"segments: 'by: {self.by}' is computed from the training data; drop 'path' (or "
                                 "name a column of the file in 'by')")
            if self.by == POPULARITY and self.edges is not None and self.edges[-1] >= 100:
                raise ValueError(f"segments.edges: {self.edges} are percentiles of taste popularity, below 100")
        else:
            if self.path is None:
                raise ValueError(f"segments: by {self.by!r} is read from a table: give 'path' (a CSV or Parquet "
                                 f"file with columns {self.id_column!r} and {self.by!r}), or use 'by: activity' "
                                 "or 'by: popularity'")
            if self.edges is not None:
                raise ValueError("segments: 'edges' bucket 'by: activity' and 'by: popularity' only")
        if self.edges is not None and (any(e < 1 for e in self.edges) or sorted(set(self.edges)) != self.edges):
            raise ValueError(f"segments.edges: {self.edges} must be increasing positive numbers")
        return self

    def bucket_edges(self) -> list[int]:
        """Bucket boundaries of a built-in segmentation: ``[5, 20]`` interactions for
        activity, the ``[33, 67]`` percentiles for popularity, unless set."""
        return list(self.edges or ((5, 20) if self.by == ACTIVITY else (33, 67)))


class AttributionSpec(Strict):
    """Stage attribution of the change from ``baseline`` to ``candidate``.

    ``metrics`` default to ``evaluate.ranking.metrics`` (and use its ``ties``, ``gain``
    and ``relevance_threshold``); ``baseline`` and ``candidate`` default to
    ``compare.baseline`` and the one ``compare.candidates``. Up to ``max_exact_stages``
    differing stages every hybrid is evaluated; above, ``n_permutations`` seeded random
    stage orders. ``n_resamples`` left unset follows the gate's family size as in
    ``compare``. ``ceiling`` adds the oracle ranker over each pipeline's first-stage
    candidates (retrieval-limited vs ranking-limited loss). ``segments`` adds the
    decomposition of every metric's change by segment (:class:`SegmentsSpec`).
    """

    baseline: str | None = None
    candidate: str | None = None
    metrics: list[str] | None = Field(None, min_length=1)
    method: Literal["bootstrap", "bca"] = "bootstrap"
    n_resamples: int | None = Field(None, ge=100)
    confidence: float = 0.95
    max_exact_stages: int = Field(MAX_EXACT_PLAYERS, ge=1, le=12)
    n_permutations: int = Field(DEFAULT_PERMUTATIONS, ge=10)
    ceiling: bool = True
    batch_size: int = Field(4096, ge=1, description="queries per batch of hybrid stage runs")
    segments: SegmentsSpec | None = None

    @field_validator("metrics")
    @classmethod
    def _parse(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        from harness.metrics import RANKING_METRICS
        from harness.metrics._names import parse_metric_names

        return [s.label for s in parse_metric_names(names, known=RANKING_METRICS)]

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, value: float) -> float:
        return check_confidence(value, name="")


def pipeline_stage_names(kind: str, params: dict[str, Any]) -> list[str] | None:
    """The stage names of a ``kind: pipeline`` model spec (None for another kind)."""
    if kind != "pipeline":
        return None
    stages = params.get("stages")
    if not isinstance(stages, list):
        return []
    return [str(s.get("name")) for s in stages if isinstance(s, dict)]


def attribution_labels(stages: list[str], metrics: list[str]) -> set[str]:
    """Every term label a gate may name for these stages (in pipeline order: a pair's
    interaction is ``interaction/<earlier>/<later>/<metric>``) and metrics."""
    labels: set[str] = set()
    for m in metrics:
        labels |= {AttributionTerm(kind, (), m).label for kind in ("total", "retrieval_limited", "ranking_limited")}
        labels |= {AttributionTerm("shapley", (s,), m).label for s in stages}
        labels |= {AttributionTerm("interaction", (a, b), m).label
                   for i, a in enumerate(stages) for b in stages[i + 1:]}
    return labels


def is_attribution_criterion(metric: str) -> bool:
    """Whether a gate criterion's metric names an attribution term (decided by ``harness attribute``)."""
    return parse_term(metric) is not None
