"""Predictions computed elsewhere (a Spark job, a service, a TREC run) read from a file.

The file has one row per (query, item), in the data set's own ids (integer or string):
``query_id``, ``item_id`` and ``score`` and/or ``p``, optionally ``rank`` (1 = best); or
it is a TREC run (``qid Q0 docid rank score tag``). See
``harness.datasets.predictions.read_predictions`` for the formats and checks. With
``score`` it serves as a retriever (each query's rows, best first) and as a ranker (the
stored score of each candidate); with ``p`` it is also a ``PointwiseModel`` whose
``predict_proba`` returns the stored probability of each (query, item) pair
(``load_precomputed`` returns a ``PrecomputedProba`` then).

Ids are mapped through the data set's id maps (``dataset.user_ids``,
``dataset.item_ids``); a data set without maps (synthetic) uses its codes ``0..n-1`` as
ids. Messages name queries and items by the user's own ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from harness.types import PAD_ITEM, PAD_SCORE, Ranking, check_probabilities
from harness.datasets.base import seen_matrix, seen_pairs
from harness.datasets.ids import IdMap, id_maps
from harness.datasets.predictions import read_predictions
from harness.errors import AdapterError, ConfigError, DataValidationError, describe_examples

from ._candidates import candidate_pairs, check_candidates, drop_to_trailing_padding, rerank

if TYPE_CHECKING:
    import scipy.sparse as sp

__all__ = ["Precomputed", "PrecomputedProba", "load_precomputed", "missing_queries_error", "read_predictions"]

Format = Literal["auto", "table", "trec"]


def missing_queries_error(name: str, n_missing: int, n_asked: int, examples: object) -> DataValidationError:
    """The error of stored predictions (``missing: error``) that lack queries the run asks
    for, wherever the file is read (here, or by the Spark engine), so the user reads one
    message; ``examples``: some of those queries, in the user's ids."""
    if n_missing == n_asked:  # not one: most often ids of another form, not missing queries
        return DataValidationError(
            f"{name}: none of the {n_asked} queries asked for has stored predictions "
            f"({describe_examples(examples)}): check that the file's query ids are the data's, in the same form "
            "(case, prefix, separators, text or integer)")
    return DataValidationError(
        f"{name}: {n_missing} of {n_asked} queries asked for have no stored predictions "
        f"({describe_examples(examples)}); set the model's params.missing: empty to rank nothing for them "
        "(evaluate.ranking.missing then says how they count)")


def display_name(source: object, name: str | None) -> str:
    """How messages name stored predictions: ``name``, else ``Precomputed(<source>)``."""
    return name or (f"Precomputed({source})" if not isinstance(source, pd.DataFrame) else "Precomputed")


def _maps(dataset: Any) -> tuple[IdMap | None, IdMap | None]:
    return id_maps(dataset) if dataset is not None else (None, None)


class Precomputed:
    """Stored predictions as retriever and ranker.

    Parameters
    ----------
    source : str, Path or DataFrame
        Parquet/CSV table (or frame) with ``query_id``, ``item_id``, ``score`` and/or
        ``p`` [, ``rank``], or a TREC run file.
    dataset : InteractionDataset, optional
        Whose id maps translate the file's ids into codes (``n_users``, ``n_items``,
        ``user_ids``, ``item_ids``); None: the file holds codes.
    missing : {"error", "empty"}, default "error"
        A query asked for that the file does not hold: an ``AdapterError``, or an empty
        ranking (it then scores 0 on every metric). In ``rank``, a candidate pair
        without a stored score is an error, or is dropped from the list with "empty".
    name : str, optional
    format : {"auto", "table", "trec"}, default "auto"
        By the file's suffix (``.trec``, ``.run``, ``.txt``: TREC run).
    exclude_seen : bool, default False
        Drop from each user's stored list the items of that user's training
        interactions (given to ``fit``) before taking the top k, as the built-in
        retrievers do by default; False: the stored lists as they are.
    """

    def __init__(self, source: str | Path | pd.DataFrame, *, dataset: Any = None,
                 missing: Literal["error", "empty"] = "error", name: str | None = None,
                 format: Format = "auto", exclude_seen: bool = False) -> None:
        if missing not in ("error", "empty"):
            raise ConfigError(f"precomputed: missing must be 'error' or 'empty', got {missing!r}")
        users, items = _maps(dataset)
        self._setup(read_predictions(source, users=users, items=items, fmt=format), source, missing, name,
                    users, items, exclude_seen)
        self.check_queries(getattr(dataset, "query_ids", ()))  # the judged queries: every run asks for them

    def _setup(self, df: pd.DataFrame, source: Any, missing: str, name: str | None,
               users: IdMap | None, items: IdMap | None, exclude_seen: bool = False) -> None:
        self.missing = missing
        self.exclude_seen = bool(exclude_seen)
        self._seen: sp.csr_matrix | None = None  # the training pairs (seen_matrix), with exclude_seen
        self.name = display_name(source, name)
        self._user_map, self._item_map = users, items
        self.has_scores = "score" in df.columns
        q = df["query_id"].to_numpy()
        items_ = df["item_id"].to_numpy()
        scores = df["score"].to_numpy() if self.has_scores else df["p"].to_numpy()
        order = np.lexsort((items_, -scores, q))
        q, items_ = q[order], items_[order]
        self.queries, starts, counts = np.unique(q, return_index=True, return_counts=True)
        width = int(counts.max())
        col = np.arange(len(q)) - np.repeat(starts, counts)
        row = np.repeat(np.arange(len(self.queries)), counts)
        self._items = np.full((len(self.queries), width), PAD_ITEM, dtype=np.int64)
        self._items[row, col] = items_
        self._scores = None
        if self.has_scores:
            self._scores = np.full((len(self.queries), width), PAD_SCORE)
            self._scores[row, col] = scores[order]
        # (query row, item) keys sorted, for lookups of candidate / labelled pairs
        self._n_key = int(items_.max()) + 1
        keys = row * self._n_key + items_
        key_order = np.argsort(keys)
        self._keys = keys[key_order]
        self._key_values = {c: df[c].to_numpy()[order][key_order] for c in ("score", "p") if c in df.columns}

    def _decode_queries(self, codes: np.ndarray) -> np.ndarray:
        return codes if self._user_map is None else self._user_map.decode(codes)

    def _rows(self, query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(self.queries, query_ids), len(self.queries) - 1)
        found = self.queries[pos] == query_ids
        if self.missing == "error" and not found.all():
            raise missing_queries_error(self.name, int((~found).sum()), len(query_ids),
                                        self._decode_queries(query_ids[~found]))
        return pos, found

    def check_queries(self, query_ids: np.ndarray) -> None:
        """Refuse, before anything runs, a file that lacks queries the run will ask for
        (``missing: error``); the message is the one ``retrieve`` would give."""
        if self.missing == "error" and self.has_scores and len(query_ids):
            self._rows(np.asarray(query_ids, dtype=np.int64))

    def _lookup(self, query_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(key position, found)`` of (query, item) code pairs."""
        pos = np.minimum(np.searchsorted(self.queries, query_ids), len(self.queries) - 1)
        qfound = self.queries[pos] == query_ids
        keys = pos * self._n_key + item_ids
        kpos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = qfound & (item_ids >= 0) & (item_ids < self._n_key) & (self._keys[kpos] == keys)
        return kpos, found

    def _need_scores(self) -> None:
        if not self.has_scores:
            raise AdapterError(f"{self.name}: the file has a 'p' column but no 'score' column; rankings need "
                               "scores (add score, or use this model for calibration only)")

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "Precomputed":
        """Nothing to learn; with ``exclude_seen``, the training pairs to drop from the lists."""
        if self.exclude_seen:
            self._seen = seen_matrix(train, n_users, n_items)
        return self

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        self._need_scores()
        query_ids = np.asarray(query_ids, dtype=np.int64)
        pos, found = self._rows(query_ids)
        width = None if self._seen is not None else k  # seen items dropped first, then the top k
        items = np.where(found[:, None], self._items[pos, :width], PAD_ITEM)
        scores = np.where(found[:, None], self._scores[pos, :width], PAD_SCORE)
        if self._seen is not None:
            items, order = drop_to_trailing_padding(items, seen_pairs(self._seen, query_ids, items))
            items = items[:, :k]
            scores = np.where(items == PAD_ITEM, PAD_SCORE, np.take_along_axis(scores, order, 1)[:, :k])
        return Ranking(query_ids, items, scores).padded(k)

    def rank(self, candidates: Ranking, k: int) -> Ranking:
        self._need_scores()
        check_candidates(candidates, k, source=self.name)
        rows, cols, pairs = candidate_pairs(candidates)
        query_ids = pairs["query_id"].to_numpy().astype(np.int64)
        self._rows(query_ids)
        kpos, found = self._lookup(query_ids, pairs["item_id"].to_numpy())
        if not found.all() and self.missing == "error":
            raise AdapterError(f"{self.name}: {int((~found).sum())} candidate pairs have no stored score "
                               f"({describe_examples(self._decode_queries(query_ids[~found]))} as query ids)")
        return rerank(candidates, rows[found], cols[found], self._key_values["score"][kpos[found]], k)


class PrecomputedProba(Precomputed):
    """``Precomputed`` whose file has a ``p`` column: also a ``PointwiseModel``."""

    def predict_proba(self, pairs: pd.DataFrame) -> np.ndarray:
        """The stored ``p`` of each (``query_id``, ``item_id``) row of ``pairs`` (codes).

        A pair without a stored ``p`` is a ``DataValidationError`` naming how many and which
        (in the user's ids), whatever ``missing`` says: calibration is never computed on
        made-up probabilities.
        """
        q = pairs["query_id"].to_numpy().astype(np.int64)
        i = pairs["item_id"].to_numpy().astype(np.int64)
        kpos, found = self._lookup(q, i)
        if not found.all():
            bad_q = self._decode_queries(q[~found])
            bad_i = i[~found] if self._item_map is None else self._item_map.decode(i[~found])
            examples = ", ".join(f"({a!r}, {b!r})" for a, b in zip(bad_q[:3].tolist(), bad_i[:3].tolist()))
            raise DataValidationError(f"{self.name}: {int((~found).sum())} of {len(q)} labelled (query, item) pairs "
                                      f"have no stored p (e.g. {examples}); calibration needs the p of every "
                                      "labelled pair")
        return check_probabilities(self._key_values["p"][kpos], len(q), source=self.name)


def load_precomputed(source: str | Path | pd.DataFrame, *, dataset: Any = None,
                     missing: Literal["error", "empty"] = "error", name: str | None = None,
                     format: Format = "auto", exclude_seen: bool = False) -> Precomputed:
    """A ``PrecomputedProba`` when the predictions have a ``p`` column, else a
    ``Precomputed`` (which the calibration family then skips, as it has no
    ``predict_proba``). Parameters as ``Precomputed``."""
    if missing not in ("error", "empty"):
        raise ConfigError(f"precomputed: missing must be 'error' or 'empty', got {missing!r}")
    users, items = _maps(dataset)
    df = read_predictions(source, users=users, items=items, fmt=format)
    cls = PrecomputedProba if "p" in df.columns else Precomputed
    model = cls.__new__(cls)
    model._setup(df, source, missing, name, users, items, exclude_seen)
    model.check_queries(getattr(dataset, "query_ids", ()))
    return model
