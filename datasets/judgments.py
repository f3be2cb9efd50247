"""Graded relevance of held-out interactions, from ratings, labels or the interaction itself.

A held-out interaction always becomes a judgment; one below the relevance threshold is a
judgment of relevance 0 (judged non-relevant), never a dropped row. Ranking metrics count
relevance >= 1 as relevant (see ``harness.metrics.evaluate_ranking``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

RELEVANCE_SOURCES = ("rating", "label", "interaction")


def relevance_from_ratings(ratings: np.ndarray, *, threshold: float | None = None,
                           grades: Mapping[float, int] | None = None) -> np.ndarray:
    """Relevance grades from explicit ratings.

    Parameters
    ----------
    ratings : array of float
        Ratings of the held-out interactions.
    threshold : float, optional
        Binary relevance: ``rel = 1[rating >= threshold]``.
    grades : mapping {rating threshold: grade}, optional
        Graded relevance: ``rel = grades[t*]`` with ``t*`` the largest threshold
        ``<= rating``, else 0. Grades must be integers >= 1 that do not decrease as the
        threshold grows, e.g. ``{4: 1, 5: 2}`` (MovieLens 4 -> 1, 5 -> 2, below 4 -> 0).

    Returns
    -------
    ndarray of int64

    Examples
    --------
    >>> import numpy as np
    >>> from harness.datasets.judgments import relevance_from_ratings
    >>> relevance_from_ratings(np.array([3, 4, 4.5, 5]), threshold=4).tolist()
    [0, 1, 1, 1]
    >>> relevance_from_ratings(np.array([3, 4, 4.5, 5]), grades={4: 1, 5: 2}).tolist()
    [0, 1, 1, 2]
    """
    if (threshold is None) == (grades is None):
        raise ConfigError("relevance from rating: give exactly one of threshold or grades")
    r = np.asarray(ratings, dtype=np.float64)
    if threshold is not None:
        return (r >= float(threshold)).astype(np.int64)
    if not grades:
        raise ConfigError("relevance.grades: must map at least one rating threshold to a grade")
    cuts = np.array(sorted(float(t) for t in grades), dtype=np.float64)
    values = np.array([grades[t] for t in sorted(grades, key=float)])
    if not np.issubdtype(values.dtype, np.integer) or (values < 1).any() or (np.diff(values) < 0).any():
        raise ConfigError(f"relevance.grades: grades must be integers >= 1, non-decreasing in the "
                          f"rating threshold; got {dict(grades)}")
    idx = np.searchsorted(cuts, r, side="right")
    return np.r_[0, values].astype(np.int64)[idx]


def relevance_from_labels(labels: np.ndarray, *, column: str = "label") -> np.ndarray:
    """Relevance grades given as labels: integers >= 0, used as they are."""
    s = pd.Series(labels)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.to_numpy().astype(np.int64)  # True/False labels are the grades 1/0
    if not pd.api.types.is_integer_dtype(s.dtype):
        raise DataValidationError(f"relevance from {column!r}: labels must be integers >= 0, "
                                  f"got dtype {s.dtype} ({describe_examples(s.head(3))})")
    v = s.to_numpy(dtype=np.int64)
    bad = v < 0
    if bad.any():
        raise DataValidationError(f"relevance from {column!r}: {int(bad.sum())} negative labels "
                                  f"({describe_examples(v[bad])})")
    return v


def judge(test: pd.DataFrame, spec: Mapping[str, Any]) -> np.ndarray:
    """Relevance of each row of ``test`` under ``spec`` (``{from: rating|label|interaction, ...}``)."""
    source = spec.get("from", "rating")
    if source == "interaction":
        return np.ones(len(test), dtype=np.int64)
    if source not in RELEVANCE_SOURCES:
        raise ConfigError(f"relevance.from: {source!r} is unknown; known: {', '.join(RELEVANCE_SOURCES)}")
    if source not in test.columns:
        raise DataValidationError(f"relevance from {source!r}: the data has no {source} column "
                                  f"(columns: {sorted(map(str, test.columns))})")
    if source == "label":
        return relevance_from_labels(test["label"].to_numpy())
    return relevance_from_ratings(test["rating"].to_numpy(), threshold=spec.get("threshold"),
                                  grades=spec.get("grades"))
