"""Which segment moved each metric: the ``decomposition`` section of a results folder.

For every metric, the change from ``before`` to ``after`` (two models on the same
queries in ``harness attribute``, or two stored runs in ``harness decompose``) is split
by :func:`harness.metrics.decomposition.decompose_by_segment` into the within-segment
effect and the mix-shift effect (which add up to the total exactly), with one Welch
interval per segment held simultaneously (Bonferroni) and a Simpson's-paradox warning.
Units are joined to their segment by id; a unit without one is an error, or a segment
of its own with ``missing: separate`` (counted either way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.datasets.segments import NO_SEGMENT, segment_labels
from harness.errors import DataValidationError
from harness.metrics.decomposition import decompose_by_segment

SECTION_VERSION = 1
SEGMENT_FIELDS = ("n_before", "n_after", "share_before", "share_after", "mean_before", "mean_after", "delta",
                  "ci_low", "ci_high", "within", "mix")


def _finite(values: pd.Series, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    v = values.to_numpy(dtype=np.float64)
    keep = np.isfinite(v)
    return v[keep], labels[keep], int((~keep).sum())


def decomposition_section(before: pd.DataFrame, after: pd.DataFrame, segments: pd.Series, *,
                          segments_after: pd.Series | None = None, metrics: list[str], by: str,
                          names: tuple[str, str], source: str, missing: str = "error",
                          confidence: float = 0.95) -> dict[str, Any]:
    """The self-describing ``decomposition`` section.

    Parameters
    ----------
    before, after : DataFrame
        Per-unit values (index: unit ids, one column per metric) of the two sides.
    segments, segments_after : Series
        Segment label by unit key (:func:`harness.datasets.segments.unit_keys`); the after
        side uses ``segments`` too unless ``segments_after`` is given (a unit may move).
    metrics : list of str
        Columns of both tables to decompose.
    by, names, source : str
        What the segments are, the two sides' names, where the segments came from.
    """
    absent = [m for m in metrics if m not in before.columns or m not in after.columns]
    if absent:
        raise DataValidationError(f"decomposition: metric(s) {absent} are not in both sides "
                                  f"({names[0]}: {list(before.columns)}; {names[1]}: {list(after.columns)})")
    lab0, miss0 = segment_labels(before.index, segments, side=names[0], source=source, missing=missing)
    lab1, miss1 = segment_labels(after.index, segments if segments_after is None else segments_after,
                                 side=names[1], source=source, missing=missing)
    notes = [f"{n} {side} units have no segment: counted as {NO_SEGMENT!r}"
             for n, side in ((miss0, names[0]), (miss1, names[1])) if n]
    entries: dict[str, Any] = {}
    for metric in metrics:
        v0, s0, nan0 = _finite(before[metric], lab0)
        v1, s1, nan1 = _finite(after[metric], lab1)
        notes += [f"{metric}: {n} {side} units without a value (undefined for them) left out"
                  for n, side in ((nan0, names[0]), (nan1, names[1])) if n]
        found = decompose_by_segment(v0, s0, v1, s1, confidence=confidence)
        table = found.table.replace({np.nan: None})
        entries[metric] = {
            "before": float(v0.mean()), "after": float(v1.mean()), "total": found.total, "within": found.within,
            "mix": found.mix, "residual": found.within + found.mix - found.total,
            "simpsons_paradox": found.simpsons_paradox, "warning": found.warning,
            "segments": [{"segment": str(row["segment"]), **{f: row[f] for f in SEGMENT_FIELDS}}
                         for row in table.to_dict("records")]}
        if found.warning:
            notes.append(f"{metric}: {found.warning}")
    return {
        "version": SECTION_VERSION,
        "by": by,
        "source": source,
        "before": names[0],
        "after": names[1],
        "confidence": confidence,
        "interval": "Welch t per segment, Bonferroni over the segments with >= 2 units on both sides",
        "units": {"before": len(before), "after": len(after),
                  "without_segment": {"before": miss0, "after": miss1}, "missing": missing},
        "metrics": entries,
        "notes": notes,
    }
