"""Re-rankers that are plain functions of a candidate list: ``f(candidates, k) -> Ranking``.

Such a function can be the last stage of a :class:`harness.adapters.pipeline.Pipeline`.
"""

from __future__ import annotations

import numpy as np

from harness.types import PAD_ITEM, PAD_SCORE, Ranking
from harness.errors import AdapterError, ConfigError, describe_examples

from ._candidates import check_candidates

# queries per block: a block's (queries, K, K) similarity tensor stays under this many cells
_BLOCK_CELLS = 16_000_000


class MMR:
    """Maximal Marginal Relevance diversity re-ranking (Carbonell & Goldstein, 1998).

    Parameters
    ----------
    item_vectors : ndarray of shape (n_items, d)
        Item representations; similarity is their cosine.
    lambda_ : float in [0, 1], default 0.5
        Weight of relevance against novelty (1 keeps the input order).

    Notes
    -----
    With relevance ``r_j`` the candidate's score min-max scaled to [0, 1] within its
    row, greedily pick ``argmax_{j not in S} lambda r_j - (1 - lambda) max_{s in S} cos(v_j, v_s)``
    (the max is 0 while ``S`` is empty); ties go to the earlier candidate. The output
    scores are ``k - position`` (MMR values are not monotone along the list).
    Vectorised over queries; the loop runs over the k positions.

    References
    ----------
    Carbonell, J. & Goldstein, J. (1998). The use of MMR, diversity-based reranking for
    reordering documents and producing summaries. SIGIR.
    """

    def __init__(self, item_vectors: np.ndarray, *, lambda_: float = 0.5) -> None:
        V = np.asarray(item_vectors, dtype=np.float64)
        if V.ndim != 2 or not np.isfinite(V).all():
            raise ConfigError(f"MMR: item_vectors must be a finite 2-D array, got shape {V.shape}")
        if not 0.0 <= lambda_ <= 1.0:
            raise ConfigError(f"MMR: lambda_ must be in [0, 1], got {lambda_}")
        norms = np.linalg.norm(V, axis=1, keepdims=True)
        self.V = np.divide(V, norms, out=np.zeros_like(V), where=norms > 0)
        self.lambda_ = lambda_

    def __call__(self, candidates: Ranking, k: int) -> Ranking:
        check_candidates(candidates, k, source="MMR")
        unknown = candidates.items >= len(self.V)
        if unknown.any():
            raise AdapterError(f"MMR: {int(unknown.sum())} candidate item ids have no vector "
                               f"(n_items={len(self.V)}; {describe_examples(candidates.items[unknown])})")
        n, width = candidates.items.shape
        block = max(1, _BLOCK_CELLS // max(width * width, 1))
        parts = [self._block(candidates.items[s : s + block], candidates.scores[s : s + block], k)
                 for s in range(0, n, block)]
        kept = min(k, width)
        items = np.concatenate(parts) if parts else np.empty((0, kept), dtype=np.int64)
        scores = np.where(items == PAD_ITEM, PAD_SCORE, (k - np.arange(kept, dtype=np.float64))[None, :])
        return Ranking(np.asarray(candidates.query_ids), items, scores).padded(k)

    def _block(self, items: np.ndarray, scores: np.ndarray, k: int) -> np.ndarray:
        n, width = items.shape
        real = items != PAD_ITEM
        lo = np.where(real, scores, np.inf).min(axis=1, keepdims=True)
        hi = np.where(real, scores, -np.inf).max(axis=1, keepdims=True)
        span = np.where(hi > lo, hi - lo, 1.0)
        rel = np.where(real, (scores - lo) / span, 0.0)
        E = self.V[np.where(real, items, 0)]
        sim = np.einsum("nid,njd->nij", E, E)
        max_sim = np.zeros((n, width))  # max similarity to the chosen; 0 while none is chosen
        available = real.copy()
        out = np.full((n, min(k, width)), PAD_ITEM, dtype=np.int64)
        rows = np.arange(n)
        for t in range(out.shape[1]):
            value = np.where(available, self.lambda_ * rel - (1 - self.lambda_) * max_sim, -np.inf)
            pick = np.argmax(value, axis=1)  # first maximum: earlier candidate wins ties
            ok = available[rows, pick]
            out[ok, t] = items[rows[ok], pick[ok]]
            available[rows, pick] = False
            max_sim = sim[rows, pick, :] if t == 0 else np.maximum(max_sim, sim[rows, pick, :])
        return out
