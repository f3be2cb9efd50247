"""Predictions computed elsewhere (a Spark job, a service) read from Parquet or CSV.

The file has one row per (query, item): ``query_id``, ``item_id``, ``score`` and
optionally ``rank`` (1 = best). It serves as a retriever (each query's rows, best
first) and as a ranker (the stored score of each candidate).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from harness.types import PAD_ITEM, PAD_SCORE, Ranking
from harness.errors import AdapterError, ConfigError, DataValidationError, describe_examples

from ._candidates import candidate_pairs, check_candidates, rerank


def read_predictions(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a ``.parquet``/``.pq`` or ``.csv`` file (or take a DataFrame) and validate it."""
    if isinstance(source, pd.DataFrame):
        df, name = source, "predictions"
    else:
        path = Path(source)
        name = str(path)
        if not path.is_file():
            raise ConfigError(f"precomputed: file not found: {path}")
        suffix = path.suffix.lower()
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        elif suffix == ".csv":
            df = pd.read_csv(path)
        else:
            raise ConfigError(f"precomputed: {path} must end in .parquet, .pq or .csv, not {suffix!r}")
    missing = [c for c in ("query_id", "item_id", "score") if c not in df.columns]
    if missing:
        raise DataValidationError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise DataValidationError(f"{name}: is empty (0 rows)")
    for col in ("query_id", "item_id") + (("rank",) if "rank" in df.columns else ()):
        values = df[col].to_numpy()
        if not np.issubdtype(values.dtype, np.integer):
            raise DataValidationError(f"{name}: column {col!r} must hold integers, got dtype {values.dtype} "
                                      f"({describe_examples(values[:3])})")
    if (df["item_id"].to_numpy() < 0).any():
        bad = df["item_id"].to_numpy() < 0
        raise DataValidationError(f"{name}: {int(bad.sum())} negative item ids ({describe_examples(df['item_id'][bad])})")
    scores = df["score"].to_numpy()
    if not np.issubdtype(scores.dtype, np.number):
        raise DataValidationError(f"{name}: column 'score' must be numeric, got dtype {scores.dtype}")
    bad = ~np.isfinite(scores.astype(np.float64))
    if bad.any():
        raise DataValidationError(f"{name}: column 'score' has {int(bad.sum())} NaN or infinite values "
                                  f"({describe_examples(df['query_id'].to_numpy()[bad])} as query ids)")
    dup = df.duplicated(["query_id", "item_id"])
    if dup.any():
        raise DataValidationError(f"{name}: {int(dup.sum())} duplicate (query_id, item_id) rows "
                                  f"({describe_examples(df['query_id'][dup])} as query ids)")
    if "rank" in df.columns:
        _check_ranks(df, name)
    return df


def _check_ranks(df: pd.DataFrame, name: str) -> None:
    """Ranks start at 1, are unique per query, and agree with the harness order of scores."""
    rank = df["rank"].to_numpy()
    if (rank < 1).any():
        raise DataValidationError(f"{name}: column 'rank' must be >= 1 ({describe_examples(rank[rank < 1])})")
    if df.duplicated(["query_id", "rank"]).any():
        raise DataValidationError(f"{name}: column 'rank' repeats within a query "
                                  f"({describe_examples(df['query_id'][df.duplicated(['query_id', 'rank'])])})")
    q, s, i = df["query_id"].to_numpy(), df["score"].to_numpy(np.float64), df["item_id"].to_numpy()
    by_rank = np.lexsort((rank, q))
    by_score = np.lexsort((i, -s, q))
    if not np.array_equal(by_rank, by_score):
        # metrics order by (score desc, item id asc); a rank column saying otherwise cannot be honoured
        bad = np.unique(q[by_rank[by_rank != by_score]])
        raise DataValidationError(f"{name}: column 'rank' disagrees with the order of 'score' (desc, ties by "
                                  f"item id asc) in {len(bad)} queries ({describe_examples(bad)}); fix the "
                                  "scores or drop the rank column")


class Precomputed:
    """Stored predictions as retriever and ranker.

    Parameters
    ----------
    source : str, Path or DataFrame
        Parquet/CSV file (or frame) with ``query_id``, ``item_id``, ``score`` [, ``rank``].
    missing : {"error", "empty"}, default "error"
        A query asked for that the file does not hold: an ``AdapterError``, or an empty
        ranking (it then scores 0 on every metric). In ``rank``, a candidate pair
        without a stored score is an error, or is dropped from the list with "empty".
    name : str, optional
    """

    def __init__(self, source: str | Path | pd.DataFrame, *, missing: Literal["error", "empty"] = "error",
                 name: str | None = None) -> None:
        if missing not in ("error", "empty"):
            raise ConfigError(f"precomputed: missing must be 'error' or 'empty', got {missing!r}")
        df = read_predictions(source)
        self.missing = missing
        self.name = name or (f"Precomputed({source})" if not isinstance(source, pd.DataFrame) else "Precomputed")
        q = df["query_id"].to_numpy().astype(np.int64)
        items = df["item_id"].to_numpy().astype(np.int64)
        scores = df["score"].to_numpy().astype(np.float64)
        order = np.lexsort((items, -scores, q))
        q, items, scores = q[order], items[order], scores[order]
        self.queries, starts, counts = np.unique(q, return_index=True, return_counts=True)
        width = int(counts.max())
        col = np.arange(len(q)) - np.repeat(starts, counts)
        row = np.repeat(np.arange(len(self.queries)), counts)
        self._items = np.full((len(self.queries), width), PAD_ITEM, dtype=np.int64)
        self._scores = np.full((len(self.queries), width), PAD_SCORE)
        self._items[row, col] = items
        self._scores[row, col] = scores
        # (query row, item) keys sorted, for score lookups of candidate pairs
        self._n_key = int(items.max()) + 1
        self._keys = row * self._n_key + items
        key_order = np.argsort(self._keys)
        self._keys, self._key_scores = self._keys[key_order], scores[key_order]

    def _rows(self, query_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos = np.minimum(np.searchsorted(self.queries, query_ids), len(self.queries) - 1)
        found = self.queries[pos] == query_ids
        if self.missing == "error" and not found.all():
            raise AdapterError(f"{self.name}: {int((~found).sum())} of {len(query_ids)} queries have no stored "
                               f"predictions ({describe_examples(query_ids[~found])}); use missing='empty' "
                               "to score them as empty rankings")
        return pos, found

    def fit(self, train: pd.DataFrame, *, n_users: int, n_items: int) -> "Precomputed":
        """Nothing to learn; ids beyond the catalogue are reported by the runner."""
        return self

    def retrieve(self, query_ids: np.ndarray, k: int) -> Ranking:
        query_ids = np.asarray(query_ids, dtype=np.int64)
        pos, found = self._rows(query_ids)
        items = np.where(found[:, None], self._items[pos, :k], PAD_ITEM)
        scores = np.where(found[:, None], self._scores[pos, :k], PAD_SCORE)
        if items.shape[1] < k:
            pad = k - items.shape[1]
            items = np.pad(items, ((0, 0), (0, pad)), constant_values=PAD_ITEM)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=PAD_SCORE)
        return Ranking(query_ids, items, scores)

    def rank(self, candidates: Ranking, k: int) -> Ranking:
        check_candidates(candidates, k, source=self.name)
        rows, cols, pairs = candidate_pairs(candidates)
        qpos, qfound = self._rows(pairs["query_id"].to_numpy().astype(np.int64))
        item = pairs["item_id"].to_numpy()
        keys = qpos * self._n_key + item
        kpos = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        found = qfound & (item < self._n_key) & (self._keys[kpos] == keys)
        if not found.all() and self.missing == "error":
            raise AdapterError(f"{self.name}: {int((~found).sum())} candidate pairs have no stored score "
                               f"({describe_examples(pairs['query_id'].to_numpy()[~found])} as query ids)")
        return rerank(candidates, rows[found], cols[found], self._key_scores[kpos[found]], k)
