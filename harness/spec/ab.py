"""The A/B analysis config (``harness ab DATA --config AB.yaml``): YAML validated by
pydantic, unknown keys are errors naming the key (as the evaluation config)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from harness.spec.base import Strict
from harness.spec.config import EngineSpec, GateCriterion, TrackingSpec, read_yaml, validate_mapping
from harness.spec.families import FamilySpec

__all__ = ["ABColumns", "ABConfig", "ABFamilySpec", "ABMetricSpec", "ABVariants", "AnalysisSpec", "ExperimentSpec",
           "HoldoutLaunch", "HoldoutSpec", "LaunchSpec", "SequentialSpec", "load_ab_config", "parse_ab_config"]


class ABColumns(Strict):
    """Column mapping of per-unit data. ``unit``: the unit id (duplicates are refused);
    ``cluster``: the randomisation unit when it is coarser than the unit (market,
    creator), which makes the analysis cluster-robust; ``segment``: a unit attribute
    (surface, country, platform) to report per-segment effects and a heterogeneity test
    for (with a statistics table: one row per segment and variant); ``window``: a time
    window id (week) for a long-term holdout, rows then being (unit, window) pairs: the
    whole experiment is analysed by unit (cluster-robust over its windows) and each window
    on its own (the effect curve)."""

    variant: str = "variant"
    unit: str | None = None
    cluster: str | None = None
    segment: str | None = None
    window: str | None = None

    @model_validator(mode="after")
    def _window(self) -> "ABColumns":
        if self.window and not (self.unit or self.cluster):
            raise ValueError("columns.window: rows are (unit, window) pairs; name the unit column (columns.unit) "
                             "so that a unit's windows are analysed together")
        if self.window and self.segment:
            raise ValueError("columns.window with columns.segment: not supported; analyse segments in a "
                             "separate run")
        return self


class ABVariants(Strict):
    """The control, the treatments and the planned split (shares; default equal)."""

    control: str = Field(min_length=1)
    treatments: list[str] = Field(min_length=1)
    split: dict[str, float] | None = None

    @model_validator(mode="after")
    def _split(self) -> "ABVariants":
        names = [self.control, *self.treatments]
        if len(set(names)) != len(names):
            raise ValueError(f"variants: names must be distinct, got {names}")
        if self.split is not None:
            if set(self.split) != set(names):
                raise ValueError(f"variants.split: needs a share for exactly {names}, got {sorted(self.split)}")
            bad = {k: v for k, v in self.split.items() if not v > 0}
            if bad:
                raise ValueError(f"variants.split: shares must be > 0, got {bad}")
            total = sum(self.split.values())
            if all(v < 1 for v in self.split.values()) and abs(total - 1) > 1e-6:
                # fractions that do not add up are a typo, not weights (weights: e.g. {a: 2, b: 1})
                raise ValueError(f"variants.split: the shares are fractions but sum to {total:g}, not 1 "
                                 f"({self.split}); give fractions that sum to 1, or weights such as 2 and 1")
        return self

    @property
    def names(self) -> list[str]:
        return [self.control, *self.treatments]

    def planned(self) -> dict[str, float]:
        return dict(self.split) if self.split is not None else {n: 1.0 for n in self.names}


class ABMetricSpec(Strict):
    """Exactly one of ``mean`` (a column), ``proportion`` (a 0/1 column) or ``ratio``
    ([numerator, denominator] columns: mean / mean, by the delta method); ``covariate``:
    the pre-period column (or [numerator, denominator] for a ratio) for CUPED."""

    mean: str | None = None
    proportion: str | None = None
    ratio: tuple[str, str] | None = None
    covariate: str | tuple[str, str] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> "ABMetricSpec":
        given = [k for k in ("mean", "proportion", "ratio") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"a metric needs exactly one of mean, proportion, ratio; got {given or 'none'}")
        return self


class SequentialSpec(Strict):
    """``fixed``: fixed-horizon Welch intervals (look once, at the planned end);
    ``always_valid``: confidence sequences, valid at every look; ``horizon`` is the
    planned number of randomisation units, where the sequence is tightest (default:
    the units seen)."""

    kind: Literal["fixed", "always_valid"] = "fixed"
    horizon: int | None = Field(None, ge=2)


class AnalysisSpec(Strict):
    confidence: float = Field(0.95, gt=0, lt=1)
    correction: Literal["holm", "bh", "none"] = "holm"
    relative_interval: Literal["delta", "fieller"] = "delta"
    cuped: bool = True
    sequential: SequentialSpec = Field(default_factory=SequentialSpec)
    srm_threshold: float = Field(0.001, gt=0, lt=1)
    variance: Literal["auto", "iid"] = "auto"


class LaunchSpec(Strict):
    """The offline evaluation that sent this treatment to the A/B test: a results folder
    of ``harness run`` whose comparison rows for ``candidate`` (default: its only
    candidate) are recorded beside the online lifts of ``treatment`` (default: the only
    treatment), for ``harness history``."""

    offline_results: str = Field(min_length=1)
    candidate: str | None = None
    treatment: str | None = None


class HoldoutLaunch(Strict):
    """One launch a long-term holdout was kept off: its ``name``, the first window it was
    live in (``start``, a label of ``columns.window``: windows sort numerically when
    numbers, else as text) and, optionally, the ``surface`` it changed (a value of
    ``holdout.surface``): its effect is then measured on that surface's rows only."""

    name: str = Field(min_length=1)
    start: str | int
    surface: str | None = None

    @property
    def start_label(self) -> str:
        return str(self.start)


class HoldoutSpec(Strict):
    """Several launches sharing one held-out group. Each launch's period runs from its
    start to the next launch's start (on its surface); per launch the cumulative effect of
    every launch so far (treated vs holdout over the launch's period) and the launch's own
    increment (that minus the cumulative effect of the period before) are reported, with
    intervals that hold together over the launches (Bonferroni)."""

    launches: list[HoldoutLaunch] = Field(min_length=1)
    surface: str | None = None

    @model_validator(mode="after")
    def _launches(self) -> "HoldoutSpec":
        names = [x.name for x in self.launches]
        if len(set(names)) != len(names):
            raise ValueError(f"holdout.launches: names must be distinct, got {names}")
        for i, x in enumerate(self.launches):  # same start on shared rows: their effects are confounded
            for y in self.launches[i + 1:]:
                if x.start_label == y.start_label and (x.surface is None or y.surface is None or x.surface == y.surface):
                    raise ValueError(f"holdout.launches: {x.name!r} and {y.name!r} start in the same window "
                                     f"({x.start_label!r}) on the same rows, so their effects cannot be told apart; "
                                     "list them as one launch")
        on_surface = [x.name for x in self.launches if x.surface is not None]
        if on_surface and self.surface is None:
            raise ValueError(f"holdout.launches: {on_surface} name a surface; set holdout.surface to the column "
                             "that holds each row's surface")
        return self


class ExperimentSpec(Strict):
    """What the experiment's data are and how to analyse them: the part of an A/B config
    the ``ab`` evaluation family runs (the gate, launch record, tracking and output are
    the app's)."""

    input: Literal["units", "statistics"] = "units"
    columns: ABColumns = Field(default_factory=ABColumns)
    variants: ABVariants
    metrics: dict[str, ABMetricSpec] = Field(min_length=1)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    holdout: HoldoutSpec | None = None

    @model_validator(mode="after")
    def _data_refs(self) -> "ExperimentSpec":
        if self.input == "statistics" and self.columns.window:
            raise ValueError("columns.window: needs per-unit data (input: units)")
        if self.input == "statistics" and self.columns.cluster:
            raise ValueError("columns.cluster: a statistics table is already per randomisation unit; "
                             "aggregate clusters in the warehouse (one row of cluster totals each)")
        if self.holdout is not None and not self.columns.window:
            raise ValueError("holdout: its launches start in time windows; name the window column (columns.window)")
        return self


class ABFamilySpec(ExperimentSpec, FamilySpec):
    """The ``ab`` family's block: an :class:`ExperimentSpec` plus the ``data`` file it reads
    (per-unit rows, or a statistics table with ``input: statistics``)."""

    data: str = Field(min_length=1)

    def compared_metrics(self) -> list[str]:
        return list(self.metrics)


class ABConfig(ExperimentSpec):
    """An A/B analysis: what the data are, which metrics, how to infer, the gate."""

    name: str = Field(min_length=1)
    gate: list[GateCriterion] = Field(default_factory=list)
    launch: LaunchSpec | None = None
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    output: str = "results"

    @model_validator(mode="after")
    def _spark(self) -> "ABConfig":
        """Spark reduces per-unit rows to sufficient statistics (``harness.spark.ab``: per
        variant, cluster, segment, time window and a holdout's launch periods, CUPED's
        cross products included); a statistics table is already small, and is refused."""
        if self.engine.kind != "spark":
            return self
        if self.input != "units":
            raise ValueError("engine: kind spark reads per-unit rows (input: units); a statistics table is "
                             "already small: use engine kind local")
        return self

    @model_validator(mode="after")
    def _refs(self) -> "ABConfig":
        if self.launch is not None:
            treatment = self.launch.treatment
            if treatment is None and len(self.variants.treatments) > 1:
                raise ValueError("launch.treatment: name the treatment the offline candidate became "
                                 f"(one of {self.variants.treatments})")
            if treatment is not None and treatment not in self.variants.treatments:
                raise ValueError(f"launch.treatment: {treatment!r} is not a treatment ({self.variants.treatments})")
        unknown = [c.metric for c in self.gate if c.metric not in self.metrics]
        if unknown:
            raise ValueError(f"gate: metric(s) {unknown} are not in metrics ({sorted(self.metrics)})")
        if self.tracking.promote is not None:
            raise ValueError("tracking.promote: an A/B analysis has no model to promote")
        return self

    def family_spec(self, data: str | Path) -> ABFamilySpec:
        """The ``ab`` family's block for this config and a data file."""
        return ABFamilySpec(data=str(data), **{k: getattr(self, k) for k in ExperimentSpec.model_fields})


def parse_ab_config(data: Any, *, source: str = "<dict>") -> ABConfig:
    """Validate an A/B config mapping; raise ``ConfigError`` naming each bad key."""
    return validate_mapping(ABConfig, data, source=source)


def load_ab_config(path: str | Path) -> ABConfig:
    """Read and validate an A/B config YAML file."""
    return parse_ab_config(read_yaml(path, label="config"), source=str(path))
