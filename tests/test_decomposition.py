"""Metric decomposition by segment: within + mix == total, Simpson's paradox, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from harness.errors import DataValidationError
from harness.metrics.decomposition import decompose_by_segment


def units(counts: dict[str, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """0/1 values: segment -> (n units, n ones)."""
    values, segments = [], []
    for seg, (n, ones) in counts.items():
        values += [1.0] * ones + [0.0] * (n - ones)
        segments += [seg] * n
    return np.array(values), np.array(segments)


def test_hand_computed_simpsons_paradox_splits_exactly_and_is_flagged() -> None:
    # before: A 80 units at 0.9, B 20 at 0.3 (mean 0.78); after: A 20 at 0.95, B 80 at 0.35 (mean 0.47)
    v0, s0 = units({"A": (80, 72), "B": (20, 6)})
    v1, s1 = units({"A": (20, 19), "B": (80, 28)})
    d = decompose_by_segment(v0, s0, v1, s1)
    # by hand: within = .5 (.05) + .5 (.05) = .05; mix = .925 (-.6) + .325 (.6) = -.36
    assert d.within == pytest.approx(0.05, abs=1e-12)
    assert d.mix == pytest.approx(-0.36, abs=1e-12)
    assert d.total == pytest.approx(0.47 - 0.78, abs=1e-12)
    assert d.within + d.mix == pytest.approx(d.total, abs=1e-12)
    rows = d.table.set_index("segment")
    assert rows.loc["A", "within"] + rows.loc["A", "mix"] == pytest.approx(0.2 * 0.95 - 0.8 * 0.9, abs=1e-12)
    assert d.simpsons_paradox and "Simpson's paradox" in d.warning and "A, B" in d.warning


def test_no_paradox_when_segments_move_with_the_total() -> None:
    v0, s0 = units({"A": (50, 40), "B": (50, 10)})
    v1, s1 = units({"A": (50, 45), "B": (50, 15)})
    d = decompose_by_segment(v0, s0, v1, s1)
    assert not d.simpsons_paradox and d.warning is None
    assert d.mix == pytest.approx(0.0, abs=1e-12) and d.within == pytest.approx(d.total, abs=1e-12)


def test_no_paradox_when_the_total_is_the_segments_own_change() -> None:
    """Same traffic on both sides (mix 0): the total rose because the small segment rose;
    the large one moved down by noise. Not a reversal (it was flagged, saying the change
    came from a mix that is exactly 0)."""
    v0, s0 = units({"web": (200, 100), "app": (100, 30)})
    v1, s1 = units({"web": (200, 99), "app": (100, 45)})
    d = decompose_by_segment(v0, s0, v1, s1)
    rows = d.table.set_index("segment")
    assert rows.loc["web", "delta"] < 0 < d.total and rows.loc["web", "share_before"] > 0.5
    assert d.mix == pytest.approx(0.0, abs=1e-12) and not d.simpsons_paradox and d.warning is None


def test_a_segment_in_one_run_only_is_all_mix() -> None:
    v0, s0 = units({"A": (10, 5)})
    v1, s1 = units({"A": (10, 5), "new": (10, 10)})
    d = decompose_by_segment(v0, s0, v1, s1)
    rows = d.table.set_index("segment")
    assert rows.loc["new", "within"] == 0.0 and np.isnan(rows.loc["new", "ci_low"])
    assert d.total == pytest.approx(0.75 - 0.5) and d.within + d.mix == pytest.approx(d.total, abs=1e-12)


def test_intervals_are_welch_at_the_bonferroni_level() -> None:
    rng = np.random.default_rng(0)
    v0, v1 = rng.normal(size=300), rng.normal(0.1, 2.0, size=200)
    s0, s1 = np.array(list("abc") * 100), np.array(list("ab") * 100)
    d = decompose_by_segment(v0, s0, v1, s1, confidence=0.9)
    row = d.table.set_index("segment").loc["a"]
    x, y = v1[s1 == "a"], v0[s0 == "a"]
    res = stats.ttest_ind(x, y, equal_var=False)
    lo, hi = res.confidence_interval(confidence_level=1 - 0.1 / 2)  # K = 2 segments on both sides
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi), abs=1e-10)


@pytest.mark.parametrize("args, match", [
    ((np.array([]), np.array([]), np.ones(2), np.array(["a", "b"])), "before has no units"),
    ((np.array([1.0, np.nan]), np.array(["a", "b"]), np.ones(2), np.array(["a", "b"])), "1 NaN or infinite"),
    ((np.ones(3), np.array(["a", "b"]), np.ones(2), np.array(["a", "b"])), "same length"),
    ((np.ones(2), np.array(["a", None], dtype=object), np.ones(2), np.array(["a", "b"])), "without a segment"),
])
def test_bad_inputs_name_the_problem(args, match: str) -> None:
    with pytest.raises(DataValidationError, match=match):
        decompose_by_segment(*args)
