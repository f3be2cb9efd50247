"""Parsing of metric names such as ``"ndcg@10"`` or ``"recall@[10,20,50]"``.

Names are parsed once, at the front door; each name maps to exactly one kernel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from harness.errors import ConfigError

Cutoff = Literal["required", "optional", "none"]

_NAME = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:@\s*(\d+|\[\s*\d+(?:\s*,\s*\d+)*\s*\]))?\s*$")


@dataclass(frozen=True, order=True)
class MetricSpec:
    """One metric at one cut-off: ``name`` (e.g. ``"ndcg"``) and ``k`` (None = no cut-off)."""

    name: str
    k: int | None = None

    @property
    def label(self) -> str:
        """The canonical name, ``ndcg@10``."""
        return self.name if self.k is None else f"{self.name}@{self.k}"


def parse_metric_names(names: str | list[str] | tuple[str, ...], *, known: dict[str, Cutoff]) -> list[MetricSpec]:
    """Expand metric strings into ``MetricSpec`` items, in order, without duplicates.

    Parameters
    ----------
    names : str or list of str
        E.g. ``["ndcg@[10,20]", "map@100", "mrr"]``.
    known : dict
        Metric name -> whether a cut-off is ``"required"``, ``"optional"`` or ``"none"``.
    """
    if isinstance(names, str):
        names = [names]
    if len(names) == 0:
        raise ConfigError("metrics: at least one metric name is needed")
    specs: list[MetricSpec] = []
    for raw in names:
        if not isinstance(raw, str):
            raise ConfigError(f"metrics: expected strings like 'ndcg@10', got {raw!r}")
        match = _NAME.match(raw.lower())
        if match is None:
            raise ConfigError(f"metrics: cannot parse {raw!r}; expected e.g. 'ndcg@10' or 'recall@[10,20]'")
        name, cut = match.group(1), match.group(2)
        if name not in known:
            raise ConfigError(f"metrics: unknown metric {name!r} in {raw!r}; known: {', '.join(sorted(known))}")
        if cut is None:
            if known[name] == "required":
                raise ConfigError(f"metrics: {name!r} needs a cut-off, e.g. '{name}@10'")
            cutoffs: list[int | None] = [None]
        else:
            if known[name] == "none":
                raise ConfigError(f"metrics: {name!r} takes no cut-off, got {raw!r}")
            cutoffs = [int(c) for c in re.findall(r"\d+", cut)]
            if any(c < 1 for c in cutoffs):  # type: ignore[operator]
                raise ConfigError(f"metrics: cut-offs must be >= 1 in {raw!r}")
        for k in cutoffs:
            spec = MetricSpec(name, k)
            if spec not in specs:
                specs.append(spec)
    return specs


def parse_label(label: str) -> MetricSpec:
    """Split one canonical label (``"ndcg@10"``, ``"map"``) into name and cut-off, for any
    metric family; the label must already have passed :func:`parse_metric_names`."""
    name, _, cut = label.partition("@")
    return MetricSpec(name, int(cut) if cut else None)


_UNIT = (0.0, 1.0)
_NON_NEGATIVE = (0.0, float("inf"))
# The range of each metric's values, per unit and on average: the parameter space its
# intervals are intersected with (a confidence set intersected with the parameter space
# keeps its coverage). Metrics whose range depends on the data (off-policy values: the
# reward's range) or that have none (calibration slope and intercept) are absent.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    # ranking (trec_eval definitions): rates in [0, 1]; DCG only non-negative
    **{name: _UNIT for name in ("ndcg", "recall", "precision", "map", "mrr", "hit_rate", "f1", "r_precision")},
    "dcg": _NON_NEGATIVE,
    # calibration
    **{name: _UNIT for name in ("ece", "ece_debiased", "mce", "brier", "reliability")},
    "resolution": (0.0, 0.25), "uncertainty": (0.0, 0.25),
    **{name: _NON_NEGATIVE for name in ("log_loss", "normalized_entropy", "oe_ratio")},
    # beyond accuracy: shares in [0, 1]; novelty (bits) and popularity >= 0; cosine distance in [0, 2]
    **{name: _UNIT for name in ("coverage", "gini", "personalization")},
    "novelty": _NON_NEGATIVE, "arp": _NON_NEGATIVE, "ild": (0.0, 2.0),
}


def value_range(label: str) -> tuple[float, float] | None:
    """The range of a metric's values from its label (``"ndcg@10"``, ``"brier"``, or a
    pipeline stage's ``"retrieval/recall@100"``), or None when it has no fixed range.

    >>> from harness.metrics._names import value_range

    >>> value_range("ndcg@10"), value_range("retrieval/dcg@5"), value_range("snips")
    ((0.0, 1.0), (0.0, inf), None)
    """
    name = parse_label(label.rsplit("/", 1)[-1]).name
    return VALUE_RANGES.get(name)
