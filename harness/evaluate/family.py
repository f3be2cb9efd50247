"""The evaluation-family contract: what the orchestrator runs and everything after it reads.

A family (ranking, beyond-accuracy, calibration, off-policy, ...) measures every model
of a run on units of one kind (queries, impressions, logged rows) and hands back a
:class:`FamilyResult`. Comparison, gate, results folder, report and MLflow logging
consume those generically, so adding a family is one module with one
:class:`Family` subclass plus its config block (a :class:`~harness.spec.config.FamilySpec`),
registered with :func:`harness.evaluate.register_family`.

Per model a family returns a :class:`ModelOutput`:

- ``per_unit``: mean-type metrics, one row per unit (the metric is the mean of the
  column), indexed by unit id: the input of paired comparisons; a pandas frame, or,
  when the backend keeps the values where it computed them (the Spark engine on a
  collection's tables), a :class:`~harness.evaluate.units.UnitTable`, which the
  comparison, the results folder and the headline values read through its methods;
- ``statistics``: ratio-type metrics (SNIPS, ECE, ...), as sum statistics over the
  same units, compared by a shared bootstrap;
- ``values``: the headline value and interval of every configured metric;
- ``inputs``: per-unit model inputs (e.g. a click row's label and predicted p) that
  ``harness compare`` needs to rebuild the statistics offline; never compared;
- ``caps``: metric -> why its comparison cannot PASS (e.g. too little overlap with the
  logs); the gate keeps such a criterion from passing but still lets it FAIL;
- ``info``: JSON-ready per-model details for ``results.json["units"][model]``.

Most families measure every model on the same units and leave the comparison to the
paired statistics of :mod:`harness.inference.paired`. A family whose "models" are
measured on disjoint units (an A/B test's variants are different users: ``pairing``
"independent") has nothing to pair; it estimates each candidate-minus-baseline
:class:`Effect` itself and hands them over in ``FamilyResult.effects``, which the
comparison turns into the same comparison rows. Such a family may also measure no model
at all (``measures_models = False``): its models come from its data, all in :meth:`Family.finish`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Generic, TypeVar

import numpy as np
import pandas as pd

from harness.evaluate.backend import LOCAL, Backend
from harness.evaluate.units import MetricValue, UnitTable
from harness.metrics._names import value_range
from harness.metrics.stats import DeltaInference, SumStatistic, WeightedStatistic, mean_confidence_interval
from harness.spec.families import FamilySpec
from harness.types import Dataset

if TYPE_CHECKING:  # figures are matplotlib objects; matplotlib loads only when plotting
    from matplotlib.figure import Figure

    from harness.evaluate.model_view import ModelView

Statistic = SumStatistic | WeightedStatistic
# A figure of a run, drawn only when its results folder is written with figures (a run
# with plots off draws none: the figures are most of a small run's time).
FigureDraw = Callable[[], "Figure"]
SpecT = TypeVar("SpecT", bound=FamilySpec)


@dataclass
class ModelOutput:
    """What one family measured on one model (see the module docstring)."""

    per_unit: pd.DataFrame | UnitTable
    values: list[MetricValue]
    statistics: dict[str, Statistic] = field(default_factory=dict)
    inputs: pd.DataFrame | None = None
    caps: dict[str, str] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Effect:
    """``candidate`` minus ``baseline`` on one metric as the family estimated it (families
    with ``pairing`` "independent"): the values compared, the ``absolute`` and ``relative``
    inferences at the two-sided level ``confidence``, and ``details``, extra JSON-ready
    columns of the comparison row (e.g. the variance reduction of CUPED)."""

    metric: str
    baseline: str
    candidate: str
    baseline_value: float
    candidate_value: float
    absolute: DeltaInference
    relative: DeltaInference | None
    confidence: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class FamilyResult:
    """Every model's output of one family, plus the family's own extras and figures.

    ``compared`` lists the metrics that get paired comparisons (columns of ``per_unit``
    or keys of ``statistics``); ``extra`` goes to ``results.json[family]`` when not
    empty; ``figures`` draw what is saved as ``plots/<name>.png``; ``notices`` are what a reader
    must know (units scored 0 or left out, and how many), printed and stored.
    """

    family: str
    unit: str
    compared: list[str]
    models: dict[str, ModelOutput]
    extra: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, FigureDraw] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # "same": every model on the same units; "common": models may lack some units (compared on the
    # units both have); "independent": disjoint units (an A/B test's arms), compared by ``effects``
    pairing: str = "same"
    # metric -> (low, high) its values lie in, when the family knows it from its data (e.g.
    # the reward range of logged feedback); other metrics use the range of their name
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    effects: list[Effect] = field(default_factory=list)
    # why no metric of the family can be trusted (e.g. a sample ratio mismatch: the assignment
    # or the logging is broken); the verdict is then INVALID whatever the gate says
    invalid: str | None = None
    # extra files of the results folder (name -> text), e.g. an A/B test's sufficient statistics
    files: dict[str, str] = field(default_factory=dict)


def mean_values(per_unit: pd.DataFrame, confidence: float,
                bounds: Callable[[str], tuple[float, float] | None] | None = value_range) -> list[MetricValue]:
    """Mean and Student-t interval of every column (NaN units left out of that column),
    the interval kept inside ``bounds(metric)`` when the metric has a range (by default
    the known range of the metric's name, :func:`harness.metrics._names.value_range`)."""
    out = []
    for metric in per_unit.columns:
        values = per_unit[metric].to_numpy(dtype=np.float64)
        values = values[~np.isnan(values)]
        low, high = mean_confidence_interval(values, confidence=confidence,
                                             bounds=bounds(str(metric)) if bounds else None)
        out.append(MetricValue(str(metric), float(values.mean()) if values.size else float("nan"),
                               float(low), float(high), int(values.size)))
    return out


class Family(ABC, Generic[SpecT]):
    """One evaluation family, built once per run from its config block.

    Subclasses set ``key`` (the ``evaluate.<key>`` block and the ``family`` column of
    ``per_unit.parquet``), ``unit`` (what one unit is) and ``spec_type``, and implement
    :meth:`measure`. The orchestrator calls ``measure`` once per model, in config order,
    then :meth:`finish` once.
    """

    key: ClassVar[str]
    unit: ClassVar[str]
    spec_type: ClassVar[type[FamilySpec]]
    # False: the family's models come from its own data (an A/B test's variants), so the
    # engine never asks it to measure a model and ``dataset`` may be None
    measures_models: ClassVar[bool] = True

    def __init__(self, spec: SpecT, dataset: Dataset | None, *, seed: int, confidence: float) -> None:
        self.spec = spec
        self.dataset = dataset
        self.seed = seed
        self.confidence = confidence
        # where the heavy computations run (local, or Spark with engine kind spark)
        self.backend: Backend = LOCAL

    def depth(self) -> int | None:
        """How many items per query this family reads from each model's ranking (None: none)."""
        return None

    @abstractmethod
    def measure(self, view: "ModelView") -> ModelOutput | None:
        """Measure one model; None when the model cannot be measured by this family
        (e.g. it has no ``predict_proba``): it is then listed as skipped."""

    def cannot_measure(self, view: "ModelView") -> str | None:
        """Why this family skips ``view``'s model (``"has no predict_proba()"``), or None.
        Known before the model is fitted, so that a gate on a metric a compared model
        will not have is refused before anything runs."""
        return None

    def check_stored(self, view: "ModelView") -> None:
        """Check a model that is stored predictions (nothing to fit) against this family's
        inputs, raising what :meth:`measure` would raise: ``harness validate`` and the
        start of a run refuse it before anything is fitted. Nothing by default."""

    def compared(self) -> list[str]:
        """Metrics compared between models: the block's compared metrics by default."""
        return self.spec.compared_metrics()

    def reuse(self, table: pd.DataFrame) -> ModelOutput:
        """Output of a model whose per-unit values come from a stored run."""
        return ModelOutput(per_unit=table, values=mean_values(table, self.confidence))

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        """Collect the outputs of every model; families add extras and figures here."""
        return FamilyResult(self.key, self.unit, self.compared(), outputs, skipped=skipped)

    @classmethod
    def restore(cls, folder: Path, data: dict[str, Any], *, confidence: float | None = None) -> FamilyResult | None:
        """The family's whole result rebuilt from a stored results folder (``data``: its
        ``results.json``), for families whose comparisons are not per-unit pairs (pairing
        "independent"), so ``harness compare`` can gate them again; None: it cannot."""
        return None

    @classmethod
    def restore_statistics(cls, inputs: pd.DataFrame, block: dict[str, Any]) -> dict[str, Statistic]:
        """Ratio-type statistics of one model rebuilt from its stored ``inputs`` and the
        stored config ``block`` of the run (for ``harness compare`` offline)."""
        return {}
