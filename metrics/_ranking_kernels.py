"""Compiled ranking-metric kernels (numba), one pass per query.

The front door (``ranking.py``) validates and factorises ids once; these kernels
assume clean input. Run rows are grouped by query with a counting sort, then each
query's segment is ordered, checked for duplicate items, joined with that query's
judgments (binary search in its sorted qrels segment) and reduced to every requested
metric at every cut-off, without materialising an (n_queries, K) matrix. Queries are
processed in parallel (``prange``).

Metric codes (``METRIC_CODES``) and per-spec cut-offs (``k = -1``: the whole list, or R
for R-precision) come in as small arrays.

Ties. ``TIES_ORDERED`` uses the order given by the tie-break key (item id ascending, or
trec_eval's); ``TIES_AVERAGE`` returns the exact expectation over all orders of
items with equal scores:

- DCG, hits (precision, recall, F1 = 2 hits / (k + R)) are linear in the items'
  positions within a tie group, so each position takes the group's mean gain;
- AP: E[b_i * H_i] for position i at offset j of a group of g items with r relevant
  and h0 relevant before the group is (r / g) * (h0 + 1 + j (r - 1) / (g - 1));
- HitRate@k and RR@k use the hypergeometric law of the group straddling the cut-off
  or holding the first relevant item.
"""

from __future__ import annotations

import numba
import numpy as np

METRIC_CODES = {"ndcg": 0, "dcg": 1, "recall": 2, "precision": 3, "map": 4, "mrr": 5,
                "hit_rate": 6, "f1": 7, "r_precision": 8}
TIES_ORDERED, TIES_AVERAGE = 0, 1
GAIN_LINEAR, GAIN_EXPONENTIAL = 0, 1


@numba.njit(cache=True)
def group_offsets(codes: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Counting sort: ``order`` lists row indices grouped by code (stable within a
    group); ``offsets[g]:offsets[g+1]`` is group g's slice. Codes < 0 are dropped.

    When the rows already come grouped (codes non-decreasing, none dropped), as runs and
    qrels usually do, ``order`` is empty and the slices index the rows themselves: no
    array of the input's length is allocated.
    """
    counts = np.zeros(n_groups + 1, dtype=np.int64)
    grouped = True
    previous = -1
    for c in codes:
        if c >= 0:
            counts[c + 1] += 1
            if c < previous:
                grouped = False
            previous = c
        else:
            grouped = False
    offsets = np.cumsum(counts)
    if grouped:
        return np.empty(0, dtype=np.int32), offsets
    fill = offsets[:-1].copy()
    # int32 row indices halve the memory of the largest array (100M rows: 400 MB);
    # the front door refuses inputs of 2**31 rows or more
    order = np.empty(offsets[-1], dtype=np.int32)
    for i in range(codes.shape[0]):
        c = codes[i]
        if c >= 0:
            order[fill[c]] = i
            fill[c] += 1
    return order, offsets


@numba.njit(cache=True)
def _rows(order: np.ndarray, offsets: np.ndarray, g: int) -> np.ndarray:
    """Row indices of group g (see ``group_offsets``)."""
    if order.shape[0] == 0:
        return np.arange(offsets[g], offsets[g + 1])
    return order[offsets[g]:offsets[g + 1]].astype(np.int64)


@numba.njit(cache=True, inline="always")
def _gain(rel: float, gain_kind: int) -> float:
    return rel if gain_kind == GAIN_LINEAR else 2.0**rel - 1.0


@numba.njit(cache=True)
def _expected_hit(pos_k: int, g_start: np.ndarray, g_size: np.ndarray, g_rel: np.ndarray,
                  g_of: np.ndarray, rel_before_group: np.ndarray) -> float:
    """P(at least one relevant item within the first ``pos_k`` positions)."""
    if pos_k <= 0:
        return 0.0
    grp = g_of[pos_k - 1]
    if rel_before_group[grp] > 0:
        return 1.0
    g, r = g_size[grp], g_rel[grp]
    take = pos_k - g_start[grp]
    p_none = 1.0
    for t in range(take):  # hypergeometric: no relevant among `take` of the group
        p_none *= (g - r - t) / (g - t)
        if p_none == 0.0:
            break
    return 1.0 - p_none


@numba.njit(cache=True)
def _expected_rr(pos_k: int, first_grp: int, g_start: np.ndarray, g_size: np.ndarray,
                 g_rel: np.ndarray) -> float:
    """E[1 / rank of the first relevant item, if within ``pos_k``]."""
    if first_grp < 0:
        return 0.0
    s, g, r = g_start[first_grp], g_size[first_grp], g_rel[first_grp]
    total = 0.0
    p_before = 1.0  # P(no relevant in the group's first j positions)
    for j in range(g - r + 1):
        if s + j >= pos_k:
            break
        p_first = p_before * r / (g - j)
        total += p_first / (s + j + 1)
        p_before *= (g - r - j) / (g - j)
    return total


@numba.njit(cache=True)
def _order_by_score(rows: np.ndarray, scores: np.ndarray, tiebreak: np.ndarray) -> np.ndarray:
    """Rows by score descending; runs of equal scores re-ordered by tie-break key."""
    ranked = rows[np.argsort(-scores[rows])]
    m = ranked.shape[0]
    i = 0
    while i < m:  # ties are rare in real scores: fix each tie group in place
        e = i + 1
        while e < m and scores[ranked[e]] == scores[ranked[i]]:
            e += 1
        if e - i > 1:
            group = ranked[i:e].copy()
            ranked[i:e] = group[np.argsort(tiebreak[group])]
        i = e
    return ranked


@numba.njit(cache=True)
def _one_query(q, run_order, run_offsets, run_items, run_scores, run_tiebreak, q_order, q_offsets,
               q_items, q_rels, metric_codes, cutoffs, threshold, gain_kind, ties, max_cut, full_list,
               values, n_relevant, duplicate, dup_judged, s_items, s_rels, s_f):
    """Evaluate query ``q`` into ``values[q]``; ``s_*`` are scratch buffers of the chunk."""
    qs, qe = q_offsets[q], q_offsets[q + 1]
    n_judged = qe - qs
    # this query's judgments sorted by item, for binary search
    judged_rows = _rows(q_order, q_offsets, q)
    by_item = judged_rows[np.argsort(q_items[judged_rows], kind="mergesort")]
    n_rel = 0
    for j in range(n_judged):
        s_items[j] = q_items[by_item[j]]
        s_rels[j] = q_rels[by_item[j]]
        if s_rels[j] >= threshold:
            n_rel += 1
        if j > 0 and s_items[j] == s_items[j - 1]:
            dup_judged[q] = s_items[j]
    n_relevant[q] = n_rel
    if n_rel == 0:
        return
    rows = _rows(run_order, run_offsets, q)
    m = rows.shape[0]
    items_sorted = np.sort(run_items[rows])
    for i in range(1, m):
        if items_sorted[i] == items_sorted[i - 1]:
            duplicate[q] = items_sorted[i]
            break
    ranked = _order_by_score(rows, run_scores, run_tiebreak)
    # ideal DCG prefix: judged grades descending
    ideal = -np.sort(-s_rels[:n_judged])
    depth_i = max(max_cut, n_judged if full_list else max_cut, n_rel)
    idcg = s_f[0]
    acc = 0.0
    for i in range(depth_i):
        if i < n_judged:
            acc += _gain(ideal[i], gain_kind) / np.log2(i + 2.0)
        idcg[i] = acc
    # with "average" ties every item counts (a tie group may straddle the cut-off)
    depth = m if (full_list or ties == TIES_AVERAGE) else min(m, max(max_cut, n_rel))
    gain, binary, bh = s_f[1], s_f[2], s_f[3]
    for i in range(depth):
        item = run_items[ranked[i]]
        pos = np.searchsorted(s_items[:n_judged], item)
        rel = s_rels[pos] if pos < n_judged and s_items[pos] == item else 0.0
        gain[i] = _gain(rel, gain_kind)
        binary[i] = 1.0 if rel >= threshold else 0.0
    first = -1
    n_groups = 0
    g_start = g_size = g_rel = g_of = rel_before_group = s_items  # only read when averaging
    if ties == TIES_AVERAGE:
        g_start = np.empty(depth, dtype=np.int64)
        g_size = np.empty(depth, dtype=np.int64)
        g_rel = np.empty(depth, dtype=np.int64)
        g_of = np.empty(depth, dtype=np.int64)
        rel_before_group = np.empty(depth, dtype=np.int64)
        i = 0
        hits_before = 0
        while i < depth:
            e = i + 1
            while e < depth and run_scores[ranked[e]] == run_scores[ranked[i]]:
                e += 1
            g = e - i
            r = 0
            gsum = 0.0
            for t in range(i, e):
                r += int(binary[t])
                gsum += gain[t]
            for t in range(i, e):
                extra = (t - i) * (r - 1) / (g - 1) if g > 1 else 0.0
                bh[t] = (r / g) * (hits_before + 1 + extra)
                gain[t] = gsum / g
                binary[t] = r / g
                g_of[t] = n_groups
            g_start[n_groups], g_size[n_groups], g_rel[n_groups] = i, g, r
            rel_before_group[n_groups] = hits_before
            if r > 0 and first < 0:
                first = n_groups
            hits_before += r
            n_groups += 1
            i = e
    else:
        hits = 0
        for i in range(depth):
            if binary[i] > 0:
                hits += 1
                if first < 0:
                    first = i
            bh[i] = binary[i] * hits
    # prefix sums, in place: gain -> DCG@i, binary -> hits@i, bh -> AP numerator@i
    d = h = a = 0.0
    for i in range(depth):
        d += gain[i] / np.log2(i + 2.0)
        h += binary[i]
        a += bh[i] / (i + 1.0)
        gain[i], binary[i], bh[i] = d, h, a
    for s in range(metric_codes.shape[0]):
        code = metric_codes[s]
        k = cutoffs[s]
        if code == 8:  # R-precision
            k = n_rel
        elif k < 0:
            k = m
        last = min(k, depth) - 1  # a list shorter than k keeps its last value
        dcg = gain[last] if last >= 0 else 0.0
        hit_count = binary[last] if last >= 0 else 0.0
        if code == 0:
            # nDCG without a cut-off compares with the ideal over all judged items
            ik = depth_i - 1 if cutoffs[s] < 0 else min(k, depth_i) - 1
            values[q, s] = dcg / idcg[ik] if ik >= 0 and idcg[ik] > 0 else 0.0
        elif code == 1:
            values[q, s] = dcg
        elif code == 2:
            values[q, s] = hit_count / n_rel
        elif code == 3 or code == 8:
            values[q, s] = hit_count / k if k > 0 else 0.0
        elif code == 4:
            values[q, s] = (bh[last] if last >= 0 else 0.0) / n_rel
        elif code == 5:
            if ties == TIES_AVERAGE:
                values[q, s] = _expected_rr(min(k, depth), first, g_start, g_size, g_rel)
            else:
                values[q, s] = 1.0 / (first + 1.0) if 0 <= first < k else 0.0
        elif code == 6:
            if ties == TIES_AVERAGE:
                values[q, s] = _expected_hit(min(k, depth), g_start, g_size, g_rel, g_of, rel_before_group)
            else:
                values[q, s] = 1.0 if hit_count > 0 else 0.0
        elif code == 7:
            values[q, s] = 2.0 * hit_count / (k + n_rel)


@numba.njit(cache=True, parallel=True)
def evaluate_segments(
    run_order: np.ndarray, run_offsets: np.ndarray, run_items: np.ndarray, run_scores: np.ndarray,
    run_tiebreak: np.ndarray, q_order: np.ndarray, q_offsets: np.ndarray, q_items: np.ndarray,
    q_rels: np.ndarray, metric_codes: np.ndarray, cutoffs: np.ndarray, threshold: float,
    gain_kind: int, ties: int, n_chunks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query values of every (metric, cut-off) spec.

    Run rows and judgments come grouped by query (``*_order`` / ``*_offsets`` from
    ``group_offsets``). Returns ``(values[n_queries, n_specs], n_relevant[n_queries],
    duplicate_run_item[n_queries], duplicate_judged_item[n_queries])``; the last two are
    -1, or an item listed twice for that query (an input error).
    """
    n_q = q_offsets.shape[0] - 1
    values = np.zeros((n_q, metric_codes.shape[0]))
    n_relevant = np.zeros(n_q)
    duplicate = np.full(n_q, -1, dtype=np.int64)
    dup_judged = np.full(n_q, -1, dtype=np.int64)
    max_cut = 1
    full_list = False
    for s in range(metric_codes.shape[0]):
        if cutoffs[s] < 0:
            full_list = True
        elif cutoffs[s] > max_cut:
            max_cut = cutoffs[s]
    max_run = 1
    max_judged = 1
    for q in range(n_q):
        max_run = max(max_run, run_offsets[q + 1] - run_offsets[q])
        max_judged = max(max_judged, q_offsets[q + 1] - q_offsets[q])
    width = max(max_run, max_judged, max_cut) + 1
    # scratch buffers are allocated per chunk (a few per thread), not per query
    n_chunks = max(1, min(n_q, n_chunks))
    for c in numba.prange(n_chunks):
        s_items = np.empty(max_judged, dtype=np.int64)
        s_rels = np.empty(max_judged)
        s_f = np.empty((4, width))
        for q in range(c * n_q // n_chunks, (c + 1) * n_q // n_chunks):
            _one_query(q, run_order, run_offsets, run_items, run_scores, run_tiebreak, q_order, q_offsets,
                       q_items, q_rels, metric_codes, cutoffs, threshold, gain_kind, ties, max_cut,
                       full_list, values, n_relevant, duplicate, dup_judged, s_items, s_rels, s_f)
    return values, n_relevant, duplicate, dup_judged
