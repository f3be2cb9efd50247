"""Binning of predicted probabilities, per group, for calibration metrics.

Everything here works on *groups* (segments) at once: ``groups`` holds a code in
``0..n_groups-1`` per row, and a plain (unsegmented) metric is the one-group case. Bin
statistics are gathered with one ``bincount`` over the combined code
``group * n_bins + bin``; no Python loop runs over rows, bins or groups.

Bin edges
---------
``uniform``: ``n_bins`` equal-width bins on [0, 1], edges ``j / n_bins``.
``quantile``: edges at the ``j / n_bins`` quantiles of the group's predictions
(linear interpolation between order statistics, NumPy's default ``np.quantile``
method), so bins hold about equal numbers of rows; tied predictions can make edges
coincide, which leaves some bins empty.

A row goes to bin ``j`` when ``edge[j] < p <= edge[j + 1]``; the first bin also takes
``p == edge[0]`` (and anything below it). This is ``np.searchsorted(inner_edges, p)``
with ``side="left"``, the rule of scikit-learn's ``calibration_curve``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.errors import DataValidationError, describe_examples
from harness.options import check_choice, check_integer

STRATEGIES = ("uniform", "quantile")


def group_codes(segments: Any, n_rows: int, *, name: str = "segments") -> tuple[np.ndarray, np.ndarray]:
    """Integer codes ``0..G-1`` of a segment column (first-appearance order) and the labels.

    Missing segment values are an error: a row without a segment cannot be silently
    dropped or lumped with others.
    """
    values = pd.Series(segments) if not isinstance(segments, pd.Series) else segments
    if len(values) != n_rows:
        raise DataValidationError(f"{name}: length {len(values)} does not match {n_rows} rows")
    codes, labels = pd.factorize(values, sort=True, use_na_sentinel=True)
    missing = codes < 0
    if missing.any():
        raise DataValidationError(f"{name}: {int(missing.sum())} rows have no segment value "
                                  f"(rows {describe_examples(np.flatnonzero(missing))})")
    return codes.astype(np.int64), np.asarray(labels)


def check_bin_options(n_bins: int, strategy: str) -> None:
    """``n_bins`` an integer >= 1 and ``strategy`` one of ``STRATEGIES`` (``ConfigError``)."""
    check_integer(n_bins, name="n_bins", minimum=1)
    check_choice(strategy, STRATEGIES, name="strategy")


def bin_edges(p: np.ndarray, groups: np.ndarray, n_groups: int, *, n_bins: int, strategy: str) -> np.ndarray:
    """Bin edges per group, shape ``(n_groups, n_bins + 1)`` (see the module docstring)."""
    levels = np.linspace(0.0, 1.0, n_bins + 1)
    if strategy == "uniform":
        return np.broadcast_to(levels, (n_groups, n_bins + 1)).copy()
    order = np.lexsort((p, groups))
    xs = p[order]
    counts = np.bincount(groups, minlength=n_groups)
    starts = np.cumsum(counts) - counts
    # np.quantile's "linear" method: virtual index h = (n - 1) q, then its lerp
    h = (counts[:, None] - 1) * levels[None, :]
    lo = np.floor(h).astype(np.int64)
    hi = np.minimum(lo + 1, counts[:, None] - 1)
    t = h - lo
    a = xs[starts[:, None] + lo]
    b = xs[starts[:, None] + hi]
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def assign_bins(p: np.ndarray, groups: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index ``0..n_bins-1`` of each row: the number of inner edges strictly below p."""
    if edges.shape[0] == 1:
        return np.searchsorted(edges[0, 1:-1], p, side="left").astype(np.int64)
    return (edges[groups, 1:-1] < p[:, None]).sum(axis=1).astype(np.int64)


def binned_sums(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_groups: int, *, n_bins: int,
                strategy: str, weights: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per (group, bin): row count (or sum of ``weights``), sum of (w) p, sum of (w) y,
    each ``(n_groups, n_bins)``; plus the flat bin code ``group * n_bins + bin`` of each
    row and the edges."""
    edges = bin_edges(p, groups, n_groups, n_bins=n_bins, strategy=strategy)
    flat = groups * n_bins + assign_bins(p, groups, edges)
    size = n_groups * n_bins
    shape = (n_groups, n_bins)
    if weights is None:
        count = np.bincount(flat, minlength=size).reshape(shape).astype(np.float64)
        sum_p = np.bincount(flat, weights=p, minlength=size).reshape(shape)
        sum_y = np.bincount(flat, weights=y, minlength=size).reshape(shape)
    else:
        count = np.bincount(flat, weights=weights, minlength=size).reshape(shape)
        sum_p = np.bincount(flat, weights=weights * p, minlength=size).reshape(shape)
        sum_y = np.bincount(flat, weights=weights * y, minlength=size).reshape(shape)
    return count, sum_p, sum_y, flat, edges
