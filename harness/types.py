"""The data types and protocols every stage shares: rankings, adapters, data sets.

The bottom of the spine (beside ``harness.errors``): models implement these protocols
and return these types, and every stage reads them, so this module imports nothing
of the harness but its errors.

A model enters the harness through one or more of these protocols. Outputs are plain
NumPy arrays, checked for shape and dtype once, here, at the boundary; everything
downstream (metric kernels, comparison, gate) trusts them.

- ``Retriever.retrieve(query_ids, k) -> Ranking``: top-k items per query.
- ``Ranker.rank(candidates, k) -> Ranking``: re-scores and re-orders given candidates.
- ``PointwiseModel.predict_proba(pairs) -> ndarray``: P(positive) per (query, item) row.
- ``Policy.action_probabilities(contexts, actions) -> ndarray``: pi_e(action | context).

An adapter may also implement ``fit(data)``; the runner calls it with the training
split before asking for outputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from harness.errors import AdapterError, HarnessError, describe_examples

PAD_ITEM = -1
PAD_SCORE = -np.inf


@dataclass(frozen=True)
class Ranking:
    """Top-k items and scores per query, as padded arrays.

    Parameters
    ----------
    query_ids : ndarray of shape (n_queries,)
        The queries, one row each, unique.
    items : ndarray of int64, shape (n_queries, k)
        Item ids ranked best first; rows with fewer than k items are padded with -1.
    scores : ndarray of float64, shape (n_queries, k)
        Scores of ``items``, non-increasing along each row; padding is -inf.
    """

    query_ids: np.ndarray
    items: np.ndarray
    scores: np.ndarray

    def __post_init__(self) -> None:
        check_ranking(self.query_ids, self.items, self.scores, source="Ranking")

    @property
    def k(self) -> int:
        return int(self.items.shape[1])

    def __len__(self) -> int:
        return int(self.items.shape[0])

    @classmethod
    def trusted(cls, query_ids: np.ndarray, items: np.ndarray, scores: np.ndarray) -> "Ranking":
        """A Ranking assembled from parts that were checked already (cut, padded or
        concatenated checked rankings of distinct queries): skips the O(n k log k) check."""
        out = object.__new__(cls)
        for name, value in (("query_ids", query_ids), ("items", items), ("scores", scores)):
            object.__setattr__(out, name, value)
        return out

    def top(self, k: int) -> "Ranking":
        """The first ``k`` columns (a cheap view)."""
        return Ranking.trusted(self.query_ids, self.items[:, :k], self.scores[:, :k])

    def padded(self, k: int) -> "Ranking":
        """Exactly ``k`` columns: cut, or padded with ``PAD_ITEM`` / ``PAD_SCORE``."""
        if self.k >= k:
            return self.top(k)
        pad = ((0, 0), (0, k - self.k))
        return Ranking.trusted(self.query_ids, np.pad(self.items, pad, constant_values=PAD_ITEM),
                               np.pad(self.scores, pad, constant_values=PAD_SCORE))

    def to_frame(self) -> pd.DataFrame:
        """Long format ``(query_id, item_id, score, rank)``, padding dropped."""
        n, k = self.items.shape
        keep = self.items.ravel() != PAD_ITEM
        return pd.DataFrame(
            {
                "query_id": np.repeat(self.query_ids, k)[keep],
                "item_id": self.items.ravel()[keep],
                "score": self.scores.ravel()[keep],
                "rank": np.tile(np.arange(1, k + 1), n)[keep],
            }
        )

    @classmethod
    def from_scores(
        cls, query_ids: np.ndarray, item_ids: np.ndarray, scores: np.ndarray, k: int
    ) -> "Ranking":
        """Top-k of a dense score matrix ``scores[n_queries, n_items]``.

        Order: score descending, ties broken by item id ascending (the harness's
        deterministic default). ``-inf`` scores mark excluded items and become padding.
        """
        scores = np.asarray(scores, dtype=np.float64)
        item_ids = np.asarray(item_ids, dtype=np.int64)
        k_eff = min(k, scores.shape[1])
        if k_eff < scores.shape[1]:
            # argpartition keeps the k largest; the boundary may split a tie, which
            # the stable sort below cannot see, so widen to include every tied item.
            part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
            kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
            n_ties_outside = (scores == kth).sum(axis=1) - (
                np.take_along_axis(scores, part, axis=1) == kth
            ).sum(axis=1)
            if np.any(n_ties_outside > 0):
                part = np.argsort(-scores, axis=1, kind="stable")[:, :k_eff]
        else:
            part = np.broadcast_to(np.arange(scores.shape[1]), scores.shape)
        top_scores = np.take_along_axis(scores, part, axis=1)
        top_items = item_ids[part]
        order = np.lexsort((top_items, -top_scores), axis=-1)
        top_items = np.take_along_axis(top_items, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        excluded = ~np.isfinite(top_scores)
        top_items = np.where(excluded, PAD_ITEM, top_items)
        top_scores = np.where(excluded, PAD_SCORE, top_scores)
        return cls(np.asarray(query_ids), top_items, top_scores).padded(k)


def check_ranking(
    query_ids: Any, items: Any, scores: Any, *, source: str, expected_k: int | None = None
) -> None:
    """Check shapes, dtypes and values of a ranking; raise ``AdapterError`` naming ``source``."""
    if not isinstance(items, np.ndarray) or not isinstance(scores, np.ndarray):
        raise AdapterError(f"{source}: items and scores must be NumPy arrays, got "
                           f"{type(items).__name__} and {type(scores).__name__}")
    query_ids = np.asarray(query_ids)
    if items.ndim != 2 or scores.ndim != 2:
        raise AdapterError(f"{source}: items and scores must be 2-D (n_queries, k); got "
                           f"shapes {items.shape} and {scores.shape}")
    if items.shape != scores.shape:
        raise AdapterError(f"{source}: items shape {items.shape} != scores shape {scores.shape}")
    if query_ids.ndim != 1 or len(query_ids) != items.shape[0]:
        raise AdapterError(f"{source}: {len(query_ids)} query ids for {items.shape[0]} rows of items")
    if expected_k is not None and items.shape[1] != expected_k:
        raise AdapterError(f"{source}: asked for k={expected_k}, got {items.shape[1]} columns")
    if not np.issubdtype(items.dtype, np.integer):
        raise AdapterError(f"{source}: items must be integer ids, got dtype {items.dtype}")
    if not np.issubdtype(scores.dtype, np.floating):
        raise AdapterError(f"{source}: scores must be floating point, got dtype {scores.dtype}")
    pad = items == PAD_ITEM
    if np.isnan(scores).any():
        rows = np.unique(np.nonzero(np.isnan(scores))[0])
        raise AdapterError(f"{source}: {int(np.isnan(scores).sum())} NaN scores in "
                           f"{len(rows)} queries ({describe_examples(query_ids[rows])})")
    bad_inf = np.isinf(scores) & ~pad
    if bad_inf.any():
        rows = np.unique(np.nonzero(bad_inf)[0])
        raise AdapterError(f"{source}: {int(bad_inf.sum())} infinite scores on real items in "
                           f"{len(rows)} queries ({describe_examples(query_ids[rows])})")
    if (items < PAD_ITEM).any():
        raise AdapterError(f"{source}: negative item ids other than the padding -1 "
                           f"({describe_examples(items[items < PAD_ITEM])})")
    if items.shape[1] > 1:
        # padding must be trailing, scores non-increasing, items unique per row
        if (pad[:, :-1] & ~pad[:, 1:]).any():
            raise AdapterError(f"{source}: padding (-1) must come after every real item of a row")
        rising = (scores[:, 1:] > scores[:, :-1]) & ~pad[:, 1:]
        if rising.any():
            rows = np.unique(np.nonzero(rising)[0])
            raise AdapterError(f"{source}: scores must be non-increasing along each row; "
                               f"{len(rows)} rows are not ({describe_examples(query_ids[rows])})")
        srt = np.sort(np.where(pad, -1 - np.arange(items.shape[1]), items), axis=1)
        dup = (np.diff(srt, axis=1) == 0).any(axis=1)
        if dup.any():
            raise AdapterError(f"{source}: {int(dup.sum())} queries list the same item twice "
                               f"({describe_examples(query_ids[dup])})")
    if len(np.unique(query_ids)) != len(query_ids):
        raise AdapterError(f"{source}: query ids must be unique")


def check_probabilities(p: Any, n_rows: int, *, source: str) -> np.ndarray:
    """Check a model's probability output: 1-D float, length ``n_rows``, in [0, 1]."""
    if not isinstance(p, np.ndarray):
        raise AdapterError(f"{source}: expected a NumPy array of probabilities, got {type(p).__name__}")
    if p.ndim != 1 or p.shape[0] != n_rows:
        raise AdapterError(f"{source}: expected shape ({n_rows},), got {p.shape}")
    if not np.issubdtype(p.dtype, np.floating):
        raise AdapterError(f"{source}: probabilities must be floating point, got dtype {p.dtype}")
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        raise AdapterError(f"{source}: {int(bad.sum())} probabilities outside [0, 1] or NaN "
                           f"({describe_examples(p[bad])})")
    return p


@runtime_checkable
class Retriever(Protocol):
    """Returns the top-k items for each query."""

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking: ...


@runtime_checkable
class Ranker(Protocol):
    """Re-scores and re-orders the candidates it is given, keeping the best k."""

    def rank(self, candidates: Ranking, k: int) -> Ranking: ...


@runtime_checkable
class PointwiseModel(Protocol):
    """Probability of a positive outcome for (query_id, item_id) rows."""

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray: ...


@runtime_checkable
class Policy(Protocol):
    """The evaluation policy's probability of given actions in given contexts."""

    def action_probabilities(self, contexts: np.ndarray, actions: np.ndarray) -> np.ndarray: ...


def call_retriever(model: Retriever, name: str, query_ids: np.ndarray, k: int) -> Ranking:
    """Call ``model.retrieve`` and check its output; failures become ``AdapterError``."""
    with adapter_call(name, "retrieve"):
        out = model.retrieve(query_ids, k)
    if not isinstance(out, Ranking):  # a Ranking checked its own arrays when it was built
        raise AdapterError(f"model {name!r}: retrieve() must return a Ranking, got {type(out).__name__}")
    if out.k > k:
        raise AdapterError(f"model {name!r}: asked for k={k}, got {out.k} columns")
    if not np.array_equal(np.asarray(out.query_ids), np.asarray(query_ids)):
        raise AdapterError(f"model {name!r}: retrieve() must return the queries it was asked for, in order")
    return out


@contextmanager
def adapter_call(name: str, method: str, *, what: str = "model", where: str = "") -> Iterator[None]:
    """Run one call into a model (or a pipeline ``what="stage"``); anything it raises that
    is not a ``HarnessError`` becomes an ``AdapterError`` naming it, the method and, when
    given, ``where`` in the work it was (e.g. ``"at batch 1 (pair rows 50..99)"``)."""
    place = f"{method}(){' ' + where if where else ''}"
    try:
        yield
    except AdapterError as exc:
        if f"{name!r}" in str(exc):
            raise
        raise AdapterError(f"{what} {name!r}, {place}: {exc}") from exc
    except HarnessError:
        raise
    except Exception as exc:  # a model's own failure, reported with its name
        raise AdapterError(f"{what} {name!r} raised {type(exc).__name__} in {place}: {exc}") from exc


class Dataset(Protocol):
    """What the engine reads of an evaluation data set
    (``harness.datasets.InteractionDataset`` is the implementation).

    Ids inside are internal codes ``0..n-1``; ``user_ids`` / ``item_ids`` map each code
    back to the data's own id (None for synthetic worlds, whose codes are the ids).
    """

    name: str
    train: pd.DataFrame
    qrels: pd.DataFrame
    n_users: int
    n_items: int
    settings: dict[str, Any]
    truth: dict[str, np.ndarray]
    user_ids: np.ndarray | None
    item_ids: np.ndarray | None
    item_features: pd.DataFrame | None
    candidates: pd.DataFrame | None
    warnings: list[str]
    cold_start: dict[str, int]
    split_stats: dict[str, int]

    @property
    def query_ids(self) -> np.ndarray: ...

    @property
    def fingerprint(self) -> str: ...

    def category_matrix(self) -> tuple[np.ndarray, np.ndarray]: ...
