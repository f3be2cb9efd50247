"""The loop over a run's models: each model measured by every configured family.

Each model is seen through one :class:`~harness.evaluate.model_view.ModelView`, so its
ranking is asked once, at the deepest depth any family reads, and shared; the view is
dropped after the model, so memory holds one model's outputs at a time besides the
per-unit tables.
"""

from __future__ import annotations

import pandas as pd

from harness.errors import ConfigError, DataValidationError, for_model, say
from harness.evaluate.backend import LOCAL, Backend
from harness.evaluate.family import Family, FamilyResult, ModelOutput
from harness.evaluate.model_view import ModelView
from harness.evaluate.registry import family_class
from harness.evaluate.units import release_kept
from harness.spec.families import FamilySpec
from harness.types import Dataset


class Evaluation:
    """The families of one run, fed one model at a time, then finished together."""

    def __init__(self, blocks: dict[str, FamilySpec], dataset: Dataset | None, *, seed: int, confidence: float,
                 progress: bool = False, backend: Backend | None = None) -> None:
        self.dataset = dataset
        self.progress = progress
        self.families: list[Family] = [family_class(key)(spec, dataset, seed=seed, confidence=confidence)
                                       for key, spec in blocks.items()]
        for family in self.families:
            family.backend = backend or LOCAL
        self.depth = max((f.depth() or 0 for f in self.families), default=0) or 1
        self.outputs: dict[str, dict[str, ModelOutput]] = {f.key: {} for f in self.families}
        self.skipped: dict[str, list[str]] = {f.key: [] for f in self.families}

    def add_model(self, name: str, model: object) -> None:
        """Measure a fitted model with every family that measures models."""
        if self.dataset is None:
            raise ConfigError(f"model {name!r}: these families measure no models (their data hold what is "
                              "compared), so there is no data set to evaluate it on")
        view = ModelView(name, model, self.dataset, self.depth, progress=self.progress)
        for family in self.families:
            if not family.measures_models:
                continue
            if (reason := family.cannot_measure(view)) is not None:
                say(f"{family.key}: {name} {reason}; skipped")
                self.skipped[family.key].append(name)
                continue
            output = family.measure(view)
            if output is None:
                self.skipped[family.key].append(name)
            else:
                self.outputs[family.key][name] = output

    def check_gate(self, metrics: list[str], models: dict[str, object]) -> None:
        """Refuse, before any model is fitted, a gate on a metric a compared model will not
        have because its family skips that model (``ece`` for a model without
        ``predict_proba``): the run would compute every family and then fail."""
        if self.dataset is None:  # families that measure no models: nothing to skip
            return
        views = [ModelView(name, model, self.dataset, self.depth, progress=False) for name, model in models.items()]
        for family in self.families:
            gated = [m for m in metrics if m in family.compared()] if family.measures_models else []
            if not gated:
                continue
            for view in views:
                if (reason := family.cannot_measure(view)) is not None:
                    raise ConfigError(f"gate: metric(s) {gated} ({family.key}) cannot be computed for {view.name!r}: "
                                      f"it {reason}; gate on other metrics, or compare models that have them")

    def check_stored(self, models: dict[str, object]) -> None:
        """Each family's :meth:`~harness.evaluate.family.Family.check_stored` of ``models``,
        stored predictions (nothing to fit): their data errors are found before any model
        is fitted, by ``harness validate`` as by ``harness run``; the message names the model."""
        if self.dataset is None:
            return
        for name, model in models.items():
            view = ModelView(name, model, self.dataset, self.depth, progress=False)
            for family in self.families:
                if not family.measures_models:
                    continue
                try:
                    family.check_stored(view)
                except DataValidationError as exc:
                    raise for_model(exc, name) from None

    def add_stored(self, name: str, tables: dict[str, pd.DataFrame]) -> None:
        """A model whose per-unit values come from a stored run, family by family."""
        for family in self.families:
            if family.key in tables:
                self.outputs[family.key][name] = family.reuse(tables[family.key])

    def release(self) -> None:
        """Free the per-unit tables a backend kept for the models measured so far (a run
        that stops before its results folder is written)."""
        release_kept(o.per_unit for outputs in self.outputs.values() for o in outputs.values())

    def finish(self) -> dict[str, FamilyResult]:
        """Every family's result, in config order."""
        return {f.key: f.finish(self.outputs[f.key], self.skipped[f.key]) for f in self.families}
