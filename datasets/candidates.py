"""Candidate sets: which items a model must rank for each query.

- ``full`` (default): the whole catalogue; ``dataset.candidates`` stays None.
- ``given``: a table of ``(user, item)`` pairs in raw ids, e.g. the output of production
  retrieval, mapped to internal ids (unknown ids are an error, never dropped).
- ``sampled``: each query's judged items plus ``n_negatives`` items drawn uniformly
  (seeded, without replacement) from the items the user neither saw in training nor has
  a judgment for.

Sampled metrics are biased estimates of full-catalogue metrics and can even order
models differently (Krichene & Rendle, "On Sampled Metrics for Item Recommendation",
KDD 2020), so a sampled candidate set always puts a warning on the data set, which goes
into the results, and its settings into the fingerprint.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples

from .base import InteractionDataset

# cells of the random-key block used to sample negatives (32 MiB of float64)
_BLOCK_CELLS = 4_000_000

SAMPLED_WARNING = ("candidates: metrics are computed on {n} sampled negatives per user plus the judged items; "
                   "sampled metrics are not comparable with full-catalogue metrics and can order models "
                   "differently (Krichene & Rendle, KDD 2020)")


def _pair_keys(q: np.ndarray, i: np.ndarray, n_items: int) -> np.ndarray:
    return np.asarray(q, dtype=np.int64) * np.int64(n_items) + np.asarray(i, dtype=np.int64)


def _sorted_unique(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


def _exact_block(q: np.ndarray, take: int, n_items: int, forbidden: np.ndarray,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ``take``-subsets of each query's allowed items by random keys over the whole
    catalogue (for users with few allowed items): ``(query ids, items)`` of the picks."""
    keys = rng.random((len(q), n_items))
    # the block's forbidden pairs are one slice of the sorted keys (queries ascend)
    lo, hi = np.searchsorted(forbidden, [q[0] * n_items, (q[-1] + 1) * n_items])
    fu, fi = np.divmod(forbidden[lo:hi], n_items)
    row = np.searchsorted(q, fu)
    mine = q[np.minimum(row, len(q) - 1)] == fu
    keys[row[mine], fi[mine]] = np.inf
    take = min(take, n_items)
    pick = np.argpartition(keys, take - 1, axis=1)[:, :take] if take < n_items else \
        np.broadcast_to(np.arange(n_items), (len(q), n_items))
    ok = np.isfinite(np.take_along_axis(keys, pick, axis=1))
    return np.broadcast_to(q[:, None], pick.shape)[ok], pick[ok]


def _rejection_block(q: np.ndarray, take: int, n_items: int, forbidden: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform ``take``-subsets by i.i.d. uniform draws, keeping the first ``take`` distinct
    allowed items in draw order (a uniformly random subset). Rows that fall short draw
    again from scratch with twice as many draws; the condition of success is symmetric in
    the allowed items, so the kept subset stays uniform."""
    out_q, out_i = [], []
    width = 2 * take + 8
    while len(q):
        draws = rng.integers(0, n_items, (len(q), width))
        keys = _pair_keys(q[:, None], draws, n_items)
        pos = np.minimum(np.searchsorted(forbidden, keys), len(forbidden) - 1)
        ok = forbidden[pos] != keys if len(forbidden) else np.ones(draws.shape, dtype=bool)
        order = np.argsort(draws, axis=1, kind="stable")
        srt = np.take_along_axis(draws, order, axis=1)
        repeat = np.zeros_like(ok)
        np.put_along_axis(repeat, order[:, 1:], srt[:, 1:] == srt[:, :-1], axis=1)  # later copies
        ok &= ~repeat
        keep = ok & (np.cumsum(ok, axis=1) <= take)
        done = keep.sum(axis=1) == take
        out_q.append(np.broadcast_to(q[done, None], draws[done].shape)[keep[done]])
        out_i.append(draws[done][keep[done]])
        q, width = q[~done], 2 * width
    return np.concatenate(out_q), np.concatenate(out_i)


def sampled_candidates(dataset: InteractionDataset, *, n_negatives: int, seed: int = 0) -> tuple[pd.DataFrame, int]:
    """Judged items plus ``n_negatives`` uniform negatives per query.

    Negatives are drawn without replacement, uniformly among the items the user has
    neither in train nor in the judgments. A user with fewer such items gets all of
    them; the number of such users is returned. Users with at least ``2 n_negatives``
    allowed items are sampled by rejection (cost ~ n_negatives per user), the others by
    random keys over the catalogue (cost ~ n_items per user).

    Returns
    -------
    (DataFrame ``query_id``, ``item_id`` sorted, int users short of negatives)
    """
    if n_negatives < 1:
        raise ConfigError(f"candidates sampled: n_negatives must be >= 1, got {n_negatives}")
    n_items = dataset.n_items
    queries = dataset.query_ids
    forbidden = _sorted_unique(np.r_[_pair_keys(dataset.train["user_id"], dataset.train["item_id"], n_items),
                                     _pair_keys(dataset.qrels["query_id"], dataset.qrels["item_id"], n_items)])
    n_allowed = n_items - np.bincount(forbidden // n_items, minlength=dataset.n_users)[queries]
    short = int((n_allowed < n_negatives).sum())
    rng = np.random.default_rng(seed)
    out_q, out_i = [dataset.qrels["query_id"].to_numpy()], [dataset.qrels["item_id"].to_numpy()]
    sparse = n_allowed >= 2 * n_negatives
    for subset, sampler, cells in ((queries[sparse], _rejection_block, 4 * n_negatives + 8),
                                   (queries[~sparse], _exact_block, n_items)):
        block = max(1, _BLOCK_CELLS // cells)
        for start in range(0, len(subset), block):  # blocks of queries bound memory; each is vectorised
            qq, ii = sampler(subset[start : start + block], n_negatives, n_items, forbidden, rng)
            out_q.append(qq)
            out_i.append(ii)
    keys = np.sort(_pair_keys(np.concatenate(out_q), np.concatenate(out_i), n_items))
    query_ids, item_ids = np.divmod(keys, n_items)
    return pd.DataFrame({"query_id": query_ids, "item_id": item_ids}), short


def given_candidates(dataset: InteractionDataset, table: pd.DataFrame, *, user: str = "user",
                     item: str = "item") -> pd.DataFrame:
    """Map a raw ``(user, item)`` candidate table to internal ids; unknown ids are an error."""
    if dataset.user_ids is None or dataset.item_ids is None:
        raise ConfigError(f"candidates given: data set {dataset.name!r} has no raw id maps")
    for col in (user, item):
        if col not in table.columns:
            raise DataValidationError(f"candidates: column {col!r} missing (columns: {list(table.columns)})")
    u = pd.Index(dataset.user_ids).get_indexer(table[user])
    i = pd.Index(dataset.item_ids).get_indexer(table[item])
    for name, pos, raw in ((user, u, table[user]), (item, i, table[item])):
        if (pos < 0).any():
            raise DataValidationError(f"candidates.{name}: {int((pos < 0).sum())} ids unknown to the data set "
                                      f"({describe_examples(raw[pos < 0].unique())})")
    out = pd.DataFrame({"query_id": u.astype(np.int64), "item_id": i.astype(np.int64)})
    dup = out.duplicated()
    if dup.any():
        raise DataValidationError(f"candidates: {int(dup.sum())} duplicate (user, item) rows "
                                  f"({describe_examples(out[dup].itertuples(index=False, name=None))})")
    return out.sort_values(["query_id", "item_id"], kind="stable").reset_index(drop=True)


def with_candidates(dataset: InteractionDataset, spec: Mapping[str, Any],
                    table: pd.DataFrame | None = None) -> InteractionDataset:
    """The data set with a candidate set: ``{kind: full}``, ``{kind: sampled, n_negatives, seed}``
    or ``{kind: given}`` with ``table``. The spec joins the settings (and so the fingerprint)."""
    kind = spec.get("kind", "full")
    warnings = list(dataset.warnings)
    if kind == "full":
        cands = None
    elif kind == "sampled":
        n = int(spec.get("n_negatives", 100))
        cands, short = sampled_candidates(dataset, n_negatives=n, seed=int(spec.get("seed", 0)))
        warnings.append(SAMPLED_WARNING.format(n=n))
        if short:
            warnings.append(f"candidates: {short} users have fewer than {n} unseen, unjudged items; "
                            "all of theirs are used")
    elif kind == "given":
        if table is None:
            raise ConfigError("candidates given: a candidate table is required")
        cands = given_candidates(dataset, table)
        missing = ~np.isin(_pair_keys(dataset.qrels["query_id"], dataset.qrels["item_id"], dataset.n_items),
                           _pair_keys(cands["query_id"], cands["item_id"], dataset.n_items))
        rel = dataset.qrels["relevance"].to_numpy() >= 1
        if (missing & rel).any():
            warnings.append(f"candidates: {int((missing & rel).sum())} relevant judgments are not among the "
                            "given candidates; no ranking of these candidates can reach them")
    else:
        raise ConfigError(f"candidates.kind: {kind!r} is unknown; known: full, given, sampled")
    return replace(dataset, candidates=cands, warnings=warnings,
                   settings={**dataset.settings, "candidates": dict(spec)})


def restrict_to_candidates(query_ids: np.ndarray, items: np.ndarray, scores: np.ndarray,
                           candidates: pd.DataFrame, *, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep, in each ranked row, only the query's candidate items (order kept; the rest of
    the row becomes padding ``-1`` / ``-inf``). Rank the full catalogue first, then restrict."""
    items = np.asarray(items, dtype=np.int64)
    allowed = np.sort(_pair_keys(candidates["query_id"], candidates["item_id"], n_items))
    keys = _pair_keys(np.asarray(query_ids)[:, None], np.maximum(items, 0), n_items)
    pos = np.minimum(np.searchsorted(allowed, keys), len(allowed) - 1)
    keep = (items >= 0) & (allowed[pos] == keys) if len(allowed) else np.zeros_like(items, dtype=bool)
    order = np.argsort(~keep, axis=1, kind="stable")
    kept = np.take_along_axis(keep, order, axis=1)
    out_items = np.where(kept, np.take_along_axis(items, order, axis=1), -1)
    out_scores = np.where(kept, np.take_along_axis(np.asarray(scores, dtype=np.float64), order, axis=1), -np.inf)
    return out_items, out_scores
