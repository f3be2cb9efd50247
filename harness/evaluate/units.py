"""Per-unit tables kept where they were computed: what the stages after a family need of them.

A family's :class:`~harness.evaluate.family.ModelOutput` carries its per-unit values as a
pandas frame (indexed by unit id, one column per mean-type metric). A backend that
computes where the data are (the Spark engine, reading a TREC collection's tables) keeps
them there instead, as a :class:`UnitTable`: with hundreds of millions of queries no
single process could hold them. Everything downstream asks the table for what it needs
and never for the table itself:

- the headline value of every column (mean and Student-t interval, as
  :func:`~harness.evaluate.family.mean_values` computes them), from aggregates;
- the units the model ranked nothing for (``flagged``), counted, named by a few
  examples, or dropped, as ``evaluate.ranking.missing`` says;
- paired comparisons with other tables of the same kind, the units joined on their id
  where the tables are (:meth:`UnitTable.paired_means`);
- its rows, a bounded batch at a time, for ``per_unit.parquet``.

The implementation lives with its backend (``harness.spark.units.SparkUnits``); this
module only says what it must do, so that the evaluate, inference and results stages
never import the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Protocol, Sequence

import pandas as pd

from harness.metrics.stats import DeltaInference, moments_confidence_interval

Bounds = tuple[float, float]


@dataclass(frozen=True)
class MetricValue:
    """One metric of one model: its value and interval over ``n_units`` units
    (NaN bounds when the metric has no per-unit interval, e.g. catalogue coverage)."""

    metric: str
    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n_units: int = 0


def moment_value(metric: str, n: int, mean: float, std: float, confidence: float,
                 bounds: Bounds | None) -> MetricValue:
    """A column's headline value from its count, mean and sample standard deviation
    (``ddof=1``): :func:`harness.metrics.stats.mean_confidence_interval`'s interval,
    mean -+ t_{(1+confidence)/2, n-1} sd / sqrt(n) intersected with ``bounds``, from
    aggregates instead of the values."""
    low, high = moments_confidence_interval(n, mean, std, confidence=confidence, bounds=bounds)
    return MetricValue(metric, float(mean) if n else float("nan"), low, high, int(n))


@dataclass(frozen=True)
class PairedMean:
    """One metric of a candidate against the baseline on their paired units: both means
    and the inferences on ``candidate - baseline`` and ``candidate / baseline - 1`` (None
    when the baseline's mean is 0), intervals already kept inside the metric's range."""

    metric: str
    baseline_value: float
    candidate_value: float
    absolute: DeltaInference
    relative: DeltaInference | None


class UnitTable(Protocol):
    """A per-unit table that stays where it was computed (see the module docstring).

    Its units are identified by the data's own ids; ``columns`` are mean-type metrics,
    one value per unit. A table may flag units (the queries a model ranked nothing for)
    without dropping them.
    """

    @property
    def columns(self) -> list[str]:
        """The metric columns, in order."""
        ...

    @property
    def n_units(self) -> int:
        """Number of units (rows)."""
        ...

    def headline(self, confidence: float) -> list[MetricValue]:
        """Mean and Student-t interval of every column over its non-NaN units, kept
        inside the metric's known range: what ``mean_values`` gives the same values."""
        ...

    def n_flagged(self) -> int:
        """Number of flagged units."""
        ...

    def flagged_examples(self, limit: int = 3) -> list[object]:
        """The first ``limit`` flagged unit ids, in ascending id order."""
        ...

    def without_flagged(self) -> "UnitTable":
        """The table without its flagged units."""
        ...

    def like(self, table: pd.DataFrame) -> "UnitTable":
        """A table of this kind holding ``table``'s values (e.g. a stored run's, indexed
        by unit id), so that it can be paired with this one."""
        ...

    def integer_ids(self) -> bool:
        """True when every unit id is a canonical integer (``CANONICAL_INT``); True when
        there is no unit."""
        ...

    def batches(self) -> Iterator[pd.DataFrame]:
        """The rows, a bounded batch at a time (at most one partition reaches this
        process at once), each indexed by the unit ids as text, one column per metric."""
        ...

    def paired_means(self, candidates: Sequence["UnitTable"], metrics: Sequence[str], *, common: bool,
                     method: str, confidence: float, n_resamples: int, seed: int,
                     bounds: Mapping[str, Bounds], names: Sequence[str]) -> list[list[PairedMean]]:
        """This table as the baseline against each candidate, on every metric: what
        :func:`harness.inference.paired.compare_models` computes from per-unit frames
        (candidate i's resample drawn with seed ``seed + i``). ``common``: compare on the
        units every table has (pairing "common"); else the units must match exactly.
        ``names``: the baseline's and the candidates' model names, for messages."""
        ...

    def release(self) -> None:
        """Free what the table holds (its persisted values); it is not read again."""
        ...


def is_unit_table(table: object) -> bool:
    """True for a table kept by its backend, False for a pandas frame."""
    return not isinstance(table, pd.DataFrame)


def release_kept(tables: Iterable[pd.DataFrame | UnitTable]) -> None:
    """Free the tables kept by their backend among ``tables`` (frames need nothing)."""
    for table in tables:
        if not isinstance(table, pd.DataFrame):
            table.release()
