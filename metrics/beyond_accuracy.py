"""Beyond-accuracy metrics of recommendation lists: coverage, exposure inequality,
novelty, popularity bias, intra-list diversity and personalisation.

Lists come as a padded matrix ``items[n_users, k]`` of item indices ``0..n_items-1``
(-1 pads), e.g. ``Ranking.items``. Per-user metrics return one value per list (the
units of paired comparisons); catalogue-level metrics return one number.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from harness.errors import DataValidationError, describe_examples
from harness.options import check_integer

PAD = -1
# metric name -> cut-off rule (see harness.metrics._names); the per-user ones are paired
BEYOND_METRICS = {name: "required" for name in ("coverage", "gini", "personalization", "novelty", "arp", "ild")}
PER_USER_METRICS = frozenset({"novelty", "arp", "ild"})


def _check_lists(items: np.ndarray, n_items: int, k: int | None) -> np.ndarray:
    items = np.asarray(items)
    if items.ndim != 2 or items.shape[0] == 0 or items.shape[1] == 0:
        raise DataValidationError(f"items: expected a non-empty 2-D array (n_users, k), got shape {items.shape}")
    if not np.issubdtype(items.dtype, np.integer):
        raise DataValidationError(f"items: expected integer item indices, got dtype {items.dtype}")
    if n_items < 1:
        raise DataValidationError(f"n_items must be >= 1, got {n_items}")
    bad = (items < PAD) | (items >= n_items)
    if bad.any():
        raise DataValidationError(f"items: {int(bad.sum())} indices outside [0, n_items={n_items}) "
                                  f"other than the padding -1 ({describe_examples(items[bad])})")
    if k is not None:
        items = items[:, :check_integer(k, name="k", minimum=1)]
    return items


def _membership(items: np.ndarray, n_items: int) -> sp.csr_matrix:
    """Binary users x items matrix of list membership (padding dropped)."""
    rows = np.repeat(np.arange(items.shape[0]), items.shape[1])
    flat = items.ravel()
    keep = flat != PAD
    data = np.ones(int(keep.sum()), dtype=np.float64)
    m = sp.csr_matrix((data, (rows[keep], flat[keep])), shape=(items.shape[0], n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def exposure_counts(items: np.ndarray, n_items: int, *, k: int | None = None) -> np.ndarray:
    """Number of lists each catalogue item appears in (length ``n_items``)."""
    items = _check_lists(items, n_items, k)
    flat = items.ravel()
    return np.bincount(flat[flat != PAD], minlength=n_items).astype(np.float64)


def catalog_coverage(items: np.ndarray, n_items: int, *, k: int | None = None) -> float:
    """Share of the catalogue recommended to at least one user.

    Notes
    -----
    coverage@k = |union of top-k lists| / n_items.
    """
    return float((exposure_counts(items, n_items, k=k) > 0).mean())


def gini_index(items: np.ndarray, n_items: int, *, k: int | None = None) -> float:
    """Gini index of item exposure over the whole catalogue (0 = equal, -> 1 = concentrated).

    Notes
    -----
    With exposures x_(1) <= ... <= x_(n) over all n catalogue items (zeros included):
    G = sum_i (2i - n - 1) x_(i) / (n sum_i x_i).

    References
    ----------
    Fleder & Hosanagar, "Blockbuster culture's next rise or fall", Management Science 2009.
    """
    x = np.sort(exposure_counts(items, n_items, k=k))
    total = x.sum()
    if total == 0:
        raise DataValidationError("items: every list is empty (all padding); Gini is undefined")
    n = x.size
    i = np.arange(1, n + 1)
    return float(((2 * i - n - 1) * x).sum() / (n * total))


def _check_popularity(popularity: np.ndarray, n_items: int) -> np.ndarray:
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.ndim != 1 or pop.size != n_items:
        raise DataValidationError(f"popularity: expected shape ({n_items},), got {pop.shape}")
    if not np.isfinite(pop).all() or (pop < 0).any():
        raise DataValidationError("popularity: counts must be finite and >= 0")
    return pop


def _per_list_mean(items: np.ndarray, per_item: np.ndarray) -> np.ndarray:
    valid = items != PAD
    values = np.where(valid, per_item[np.where(valid, items, 0)], 0.0)
    counts = valid.sum(axis=1)
    out = np.zeros(items.shape[0])
    np.divide(values.sum(axis=1), counts, out=out, where=counts > 0)
    return out


def novelty(items: np.ndarray, popularity: np.ndarray, n_users: int, *, k: int | None = None) -> np.ndarray:
    """Mean self-information of each list's items, per user.

    Parameters
    ----------
    popularity : ndarray of shape (n_items,)
        Number of (training) users who interacted with each item.
    n_users : int
        Number of (training) users behind ``popularity``.

    Notes
    -----
    novelty(u) = mean_{i in L_u} -log2(p_i), p_i = (pop_i + 1) / (n_users + 1): the share
    of users who know the item, add-one smoothed so that unseen items are finite.

    References
    ----------
    Zhou et al., "Solving the apparent diversity-accuracy dilemma of recommender
    systems", PNAS 2010.
    """
    pop = _check_popularity(popularity, len(popularity))
    items = _check_lists(items, pop.size, k)
    if n_users < 1 or pop.max() > n_users:
        raise DataValidationError(f"n_users must be >= 1 and >= every popularity count, got {n_users}")
    info = -np.log2((pop + 1.0) / (n_users + 1.0))
    return _per_list_mean(items, info)


def average_popularity(items: np.ndarray, popularity: np.ndarray, *, k: int | None = None) -> np.ndarray:
    """Average recommendation popularity (ARP) per user: mean popularity of the list's items.

    References
    ----------
    Abdollahpouri et al., "Managing popularity bias in recommender systems with
    personalized re-ranking", FLAIRS 2019.
    """
    pop = _check_popularity(popularity, len(popularity))
    return _per_list_mean(_check_lists(items, pop.size, k), pop)


def intra_list_diversity(items: np.ndarray, item_vectors: np.ndarray, *, k: int | None = None,
                         batch_users: int = 4096) -> np.ndarray:
    """Mean pairwise cosine distance between the items of each list, per user.

    Notes
    -----
    ILD(u) = 2 / (m (m - 1)) sum_{i < j in L_u} (1 - cos(v_i, v_j)) over the m items of
    the list that have a non-zero vector (e.g. a film with no genre has none); 0 when
    m < 2. Users are processed in batches (memory O(batch k^2)).

    References
    ----------
    Ziegler et al., "Improving recommendation lists through topic diversification", WWW 2005.
    """
    vectors = np.asarray(item_vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise DataValidationError(f"item_vectors: expected 2-D (n_items, dim), got shape {vectors.shape}")
    items = _check_lists(items, vectors.shape[0], k)
    if not np.isfinite(vectors).all():
        raise DataValidationError("item_vectors: NaN or infinite values")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    has_vector = norms[:, 0] > 0
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    out = np.zeros(items.shape[0])
    for start in range(0, items.shape[0], batch_users):
        block = items[start : start + batch_users]
        # an item without features (a zero vector) has no cosine: left out like padding
        valid = (block != PAD) & has_vector[np.where(block != PAD, block, 0)]
        vec = unit[np.where(valid, block, 0)] * valid[..., None]
        sims = np.einsum("ukd,ujd->ukj", vec, vec)
        m = valid.sum(axis=1).astype(np.float64)
        pairs = m * (m - 1)
        off_diag = sims.sum(axis=(1, 2)) - m  # valid self-similarities are 1
        mean_sim = np.divide(off_diag, pairs, out=np.zeros_like(m), where=pairs > 0)
        out[start : start + batch_users] = np.where(pairs > 0, 1.0 - mean_sim, 0.0)
    return out


def personalization(items: np.ndarray, n_items: int, *, k: int | None = None,
                    max_pairs: int = 200_000, seed: int = 0) -> float:
    """1 - mean Jaccard overlap between two users' lists.

    All pairs when there are at most ``max_pairs`` of them; otherwise ``max_pairs``
    distinct-user pairs drawn uniformly with ``seed``.

    Notes
    -----
    personalization = 1 - mean_{u != v} |L_u & L_v| / |L_u | L_v|.
    """
    items = _check_lists(items, n_items, k)
    n = items.shape[0]
    if n < 2:
        raise DataValidationError(f"items: personalization needs at least 2 users, got {n}")
    m = _membership(items, n_items)
    sizes = np.asarray(m.sum(axis=1)).ravel()
    if n * (n - 1) // 2 <= max_pairs:
        a, b = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        a = rng.integers(0, n, max_pairs)
        b = (a + rng.integers(1, n, max_pairs)) % n  # never the same user
    inter = np.asarray(m[a].multiply(m[b]).sum(axis=1)).ravel()
    union = sizes[a] + sizes[b] - inter
    jaccard = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return float(1.0 - jaccard.mean())
