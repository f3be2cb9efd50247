"""Decomposition of a metric's change between two runs by segment: within vs mix shift.

With segment shares ``w_g`` and segment means ``m_g`` (the overall mean is
``M = sum_g w_g m_g``), the change from run 0 to run 1 splits exactly into

- within-segment effect ``W = sum_g (w0_g + w1_g) / 2 (m1_g - m0_g)``: the segments got
  better or worse;
- mix-shift effect ``X = sum_g (m0_g + m1_g) / 2 (w1_g - w0_g)``: the traffic moved between
  segments of different levels;

and ``W + X = M1 - M0`` exactly (the symmetric shift-share split; per segment the two
terms add to ``w1_g m1_g - w0_g m0_g``). A segment present in one run only takes the
same mean in the other, so all of its change is mix. Simpson's paradox is flagged when
the within-segment effect and the total point opposite ways (the mix turned the total
around) and the segments holding most of the traffic (by average share) move against
the total.

Per-segment intervals of ``m1_g - m0_g`` are Welch t intervals at level ``1 - alpha / K``
for ``K`` segments with units on both sides (Bonferroni), so that all of them hold at
once with probability at least ``1 - alpha``.

References
----------
Kitagawa, E. M. (1955). Components of a difference between two rates. *JASA* 50(272),
1168-1194 (the symmetric decomposition).
Simpson, E. H. (1951). The interpretation of interaction in contingency tables. *JRSS B* 13(2).

Examples
--------
>>> import numpy as np
>>> from harness.metrics.decomposition import decompose_by_segment
>>> before = np.array([1.0, 1.0, 1.0, 0.0]); seg0 = np.array(["a", "a", "a", "b"])
>>> after = np.array([1.0, 0.0, 0.0, 0.0]);  seg1 = np.array(["a", "b", "b", "b"])
>>> d = decompose_by_segment(before, seg0, after, seg1)
>>> round(d.within, 4), round(d.mix, 4), round(d.total, 4)
(0.0, -0.5, -0.5)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import DataValidationError
from harness.options import check_confidence


@dataclass(frozen=True)
class SegmentDecomposition:
    """``table``: one row per segment (``n_before``, ``n_after``, ``share_before``,
    ``share_after``, ``mean_before``, ``mean_after``, ``delta``, ``ci_low``, ``ci_high``,
    ``within``, ``mix``); ``total = within + mix``; ``simpsons_paradox`` with its ``warning``."""

    table: pd.DataFrame
    total: float
    within: float
    mix: float
    simpsons_paradox: bool
    warning: str | None
    confidence: float


def _check(values: np.ndarray, segments: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(segments)
    if v.ndim != 1 or s.shape != v.shape:
        raise DataValidationError(f"decompose_by_segment: {side} values {v.shape} and segments {s.shape} must be "
                                  "1-D and of the same length")
    if v.size == 0:
        raise DataValidationError(f"decompose_by_segment: {side} has no units")
    bad = ~np.isfinite(v)
    if bad.any():
        raise DataValidationError(f"decompose_by_segment: {side} has {int(bad.sum())} NaN or infinite values "
                                  f"(e.g. unit {int(np.nonzero(bad)[0][0])})")
    if pd.isna(s).any():
        raise DataValidationError(f"decompose_by_segment: {side} has {int(pd.isna(s).sum())} units without a segment")
    return v, s


def _moments(values: np.ndarray, segments: np.ndarray) -> pd.DataFrame:
    frame = pd.DataFrame({"segment": segments, "v": values})
    return frame.groupby("segment", sort=True)["v"].agg(["count", "mean", "var"])


def decompose_by_segment(before: np.ndarray, before_segments: np.ndarray, after: np.ndarray,
                         after_segments: np.ndarray, *, confidence: float = 0.95) -> SegmentDecomposition:
    """Within-segment and mix-shift parts of the change of a mean metric (see the module docstring).

    Parameters
    ----------
    before, after : ndarray of shape (n_units,)
        Per-unit values of the metric in each run (units need not be the same).
    before_segments, after_segments : ndarray of shape (n_units,)
        Each unit's segment (surface, cohort, popularity bucket, ...).
    confidence : float, default 0.95
        Simultaneous level of the per-segment intervals (Bonferroni over the segments).
    """
    check_confidence(confidence, name="confidence")
    v0, s0 = _check(before, before_segments, "before")
    v1, s1 = _check(after, after_segments, "after")
    a, b = _moments(v0, s0), _moments(v1, s1)
    table = a.add_suffix("_before").join(b.add_suffix("_after"), how="outer")
    n0 = table["count_before"].fillna(0.0).to_numpy()
    n1 = table["count_after"].fillna(0.0).to_numpy()
    # a segment seen in one run only keeps its mean in the other: its change is all mix
    m0 = table["mean_before"].fillna(table["mean_after"]).to_numpy()
    m1 = table["mean_after"].fillna(table["mean_before"]).to_numpy()
    w0, w1 = n0 / n0.sum(), n1 / n1.sum()
    within = (w0 + w1) / 2 * (m1 - m0)
    mix = (m0 + m1) / 2 * (w1 - w0)
    # Welch t intervals, Bonferroni over the segments observed on both sides with >= 2 units each
    both = (n0 >= 2) & (n1 >= 2)
    k = max(int(both.sum()), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        q0 = table["var_before"].to_numpy() / n0
        q1 = table["var_after"].to_numpy() / n1
        se = np.sqrt(q0 + q1)
        df = (q0 + q1) ** 2 / (q0**2 / (n0 - 1) + q1**2 / (n1 - 1))
        t = special.stdtrit(np.where(df > 0, df, 1.0), 1 - (1 - confidence) / (2 * k))
        half = np.where(se > 0, t * se, 0.0)
    delta = m1 - m0
    out = pd.DataFrame({
        "segment": table.index.to_numpy(), "n_before": n0.astype(np.int64), "n_after": n1.astype(np.int64),
        "share_before": w0, "share_after": w1, "mean_before": table["mean_before"].to_numpy(),
        "mean_after": table["mean_after"].to_numpy(), "delta": np.where(both, delta, np.nan),
        "ci_low": np.where(both, delta - half, np.nan), "ci_high": np.where(both, delta + half, np.nan),
        "within": within, "mix": mix})
    total = float(v1.mean() - v0.mean())
    paradox, warning = _simpson(total, float(within.sum()), float(mix.sum()), delta[both], ((w0 + w1) / 2)[both],
                                out["segment"].to_numpy()[both])
    return SegmentDecomposition(out, total, float(within.sum()), float(mix.sum()), paradox, warning, confidence)


def _simpson(total: float, within: float, mix: float, delta: np.ndarray, weight: np.ndarray,
             names: np.ndarray) -> tuple[bool, str | None]:
    """Flag a reversal: the within-segment effect and the total point opposite ways (so
    the mix shift turned the total around) while the segments holding most of the
    (average) traffic moved against the total. Segments that moved against a total their
    own change explains (mix ~ 0) are noise around it, not a paradox."""
    if total == 0 or not delta.size or np.sign(within) != -np.sign(total):
        return False, None
    against = np.sign(delta) == -np.sign(total)
    if weight[against].sum() <= 0.5 * weight.sum():
        return False, None
    way = "fell" if total < 0 else "rose"
    return True, (f"Simpson's paradox: the metric {way} overall ({total:+.4g}) while segments holding "
                  f"{weight[against].sum() / weight.sum():.0%} of the traffic moved the other way "
                  f"({', '.join(map(str, names[against][:5]))}): the change comes from the mix of segments "
                  f"({mix:+.4g}; within {within:+.4g})")
