"""Vectorised ranking-metric kernels over padded per-query arrays.

Every kernel reads the same inputs, built once by the join in ``ranking.py``:

- ``rel[n, K]``: graded relevance of the item at each rank (0 for unjudged or padding);
- ``ideal_rel[n, K]``: the query's judged relevances sorted descending (0-padded);
- ``n_relevant[n]``: number of judged items with relevance >= the threshold.

Kernels assume clean input and return one value per query. No loops over queries.
"""

from __future__ import annotations

import numpy as np


def discounts(k: int) -> np.ndarray:
    """1 / log2(i + 1) for ranks i = 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def gain_values(rel: np.ndarray, gain: str) -> np.ndarray:
    """Linear gain ``rel`` or exponential gain ``2**rel - 1``, as float64."""
    rel = rel.astype(np.float64, copy=False)
    return rel if gain == "linear" else np.exp2(rel) - 1.0


def dcg_curve(gains: np.ndarray) -> np.ndarray:
    """DCG@k for every k = 1..K: cumulative sum of gain_i / log2(i + 1)."""
    return np.cumsum(gains * discounts(gains.shape[1]), axis=1)


def ndcg_curve(gains: np.ndarray, ideal_gains: np.ndarray) -> np.ndarray:
    """nDCG@k for every k: DCG@k / IDCG@k, 0 where IDCG@k is 0."""
    dcg = dcg_curve(gains)
    idcg = dcg_curve(ideal_gains)
    out = np.zeros_like(dcg)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


def hits_curve(binary: np.ndarray) -> np.ndarray:
    """Number of relevant items within the top k, for every k."""
    return np.cumsum(binary, axis=1, dtype=np.float64)


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den is 0 (broadcasting ``den`` over columns if 1-D)."""
    den = np.asarray(den, dtype=np.float64)
    if den.ndim == 1 and num.ndim == 2:
        den = den[:, None]
    out = np.zeros(np.broadcast(num, den).shape)
    np.divide(num, den, out=out, where=den > 0)
    return out


def average_precision_curve(binary: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP@k (trec_eval ``map_cut``): sum of P@i over relevant ranks i <= k, / all relevant."""
    hits = hits_curve(binary)
    ranks = np.arange(1, binary.shape[1] + 1, dtype=np.float64)
    return safe_divide(np.cumsum(binary * hits / ranks, axis=1), n_relevant)


def reciprocal_rank_curve(binary: np.ndarray) -> np.ndarray:
    """RR@k: 1 / rank of the first relevant item if it is within k, else 0."""
    n, K = binary.shape
    has = binary.any(axis=1)
    first = np.where(has, binary.argmax(axis=1), K)
    ks = np.arange(K)[None, :]
    rr = np.where(has, 1.0 / (first + 1.0), 0.0)[:, None]
    return np.where(ks >= first[:, None], rr, 0.0)
