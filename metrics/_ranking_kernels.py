"""Compiled ranking-metric kernels (numba), one pass per query.

The front door (``ranking.py``) validates and factorises ids once and casts every array
to the dtypes of the signatures below; these kernels assume clean input. Run rows and
judgments are grouped by query with a counting sort (no copy when they already come
grouped, the usual case). Queries run in parallel (``prange``); each writes only its own
output slots, so the results are the same, to the last bit, whatever the thread count.

Per query, with no allocation in the common case:

1. its judgments go into an open-addressing hash table (scratch of the thread) keyed by
   item; every run item is looked up (and inserted), which joins the two and finds
   duplicate items in either;
2. only the run items with a positive grade matter to any metric: their ranks are
   counted directly (rank = number of rows that order before them: a branch-free,
   vectorised pass over the query's scores) when there are at most ``count_max`` of
   them, else read off a full sort of the query's rows;
3. DCG, hits and AP accumulate over those items in rank order (a precomputed table of
   log2(i + 2)), and each (metric, cut-off) spec reads its prefix.

The sums add the same non-zero terms in the same order as a dense pass over every rank
would, so both rank paths give identical bits.

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

Signatures are explicit (and cached on disk): each entry point compiles once per
install, on first import, whatever the callers pass; a wrong dtype is a TypeError, not
a silent second compilation.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types as nt

METRIC_CODES = {"ndcg": 0, "dcg": 1, "recall": 2, "precision": 3, "map": 4, "mrr": 5,
                "hit_rate": 6, "f1": 7, "r_precision": 8}
TIES_ORDERED, TIES_AVERAGE = 0, 1
GAIN_LINEAR, GAIN_EXPONENTIAL = 0, 1
# Up to this many positively graded run items per query, their ranks are counted (n x m
# vectorised compares) rather than read off a sort of the query's m rows.
COUNT_RANKS_MAX = 32

# Inputs are declared read-only and C-contiguous: writable arrays are accepted as well,
# so one compiled version serves every caller.
_I32 = nt.Array(nt.int32, 1, "C", readonly=True)
_I64 = nt.Array(nt.int64, 1, "C", readonly=True)
_F64 = nt.Array(nt.float64, 1, "C", readonly=True)
_FIB = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 2^64 / golden ratio


@numba.njit(nt.Tuple((nt.int32[::1], nt.int64[::1]))(_I32, nt.int64), cache=True)
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


@numba.njit(cache=True, inline="always")
def _row(order: np.ndarray, start: int, t: int) -> int:
    """Row ``t`` of a group that starts at ``start`` (see ``group_offsets``)."""
    return start + t if order.shape[0] == 0 else np.int64(order[start + t])


@numba.njit(cache=True, inline="always")
def _probe(key: int, q: int, shift: np.uint64, mask: int, h_key: np.ndarray, h_state: np.ndarray) -> int:
    """Slot of ``key`` in query q's table, or the empty slot where it would go.

    A slot belongs to query q when ``h_state >> 1 == q`` (state 2q: a judged item not yet
    met in the run; 2q + 1: met in the run): the table is never cleared between queries.
    """
    slot = np.int64((np.uint64(key) * _FIB) >> shift)
    while h_state[slot] >> 1 == q and h_key[slot] != key:
        slot = (slot + 1) & mask  # linear probing; the table is at most half full
    return slot


@numba.njit(cache=True)
def _ideal_prefix(grades: np.ndarray, n: int, gain_kind: int, disc: np.ndarray, out: np.ndarray) -> None:
    """out[i] = ideal DCG@(i + 1): the n judged grades sorted descending (in place)."""
    if n <= COUNT_RANKS_MAX:
        for i in range(1, n):  # insertion sort: a few dozen judgments per query
            g = grades[i]
            j = i - 1
            while j >= 0 and grades[j] < g:
                grades[j + 1] = grades[j]
                j -= 1
            grades[j + 1] = g
    else:
        grades[:n] = -np.sort(-grades[:n])
    acc = 0.0
    for i in range(n):
        acc += _gain(grades[i], gain_kind) / disc[i]
        out[i] = acc


@numba.njit(cache=True, inline="always")
def _spec_value(code: int, k: int, n_rel: int, dcg: float, hits: float, ap: float, rr: float,
                hit: float, idcg: float) -> float:
    """Value of one spec from the query's prefixes at its effective cut-off ``k``."""
    if code == 0:
        return dcg / idcg if idcg > 0 else 0.0
    if code == 1:
        return dcg
    if code == 2:
        return hits / n_rel
    if code == 3 or code == 8:
        return hits / k if k > 0 else 0.0
    if code == 4:
        return ap / n_rel
    if code == 5:
        return rr
    if code == 6:
        return hit
    return 2.0 * hits / (k + n_rel)  # code 7, F1


@numba.njit(cache=True, inline="always")
def _cut(code: int, cutoff: int, n_rel: int, m: int) -> int:
    """Effective cut-off: R for R-precision, the whole list for k = -1."""
    if code == 8:
        return n_rel
    return m if cutoff < 0 else cutoff


@numba.njit(cache=True, inline="always")
def _idcg(cutoff: int, n_judged: int, ideal: np.ndarray) -> float:
    """Ideal DCG at a spec's cut-off; without one, over every judged item."""
    n_top = n_judged if cutoff < 0 else min(cutoff, n_judged)
    return ideal[n_top - 1] if n_top > 0 else 0.0


@numba.njit(cache=True)
def _rank_by_count(run_order, rs, m, run_scores, run_tiebreak, s_row, s_rank, n_int) -> None:
    """s_rank[a] = 0-based rank of row s_row[a] among the query's m rows: the rows with
    a higher score, or an equal score and a smaller tie-break key, come before it."""
    for a in range(n_int):
        score = run_scores[s_row[a]]
        above = 0
        equal = 0  # itself included
        # count with scores alone (a branch-free loop that vectorises); the tie-break
        # keys are read only when another row has the same score
        if run_order.shape[0] == 0:
            for t in range(rs, rs + m):
                above += run_scores[t] > score
                equal += run_scores[t] == score
        else:
            for t in range(rs, rs + m):
                above += run_scores[run_order[t]] > score
                equal += run_scores[run_order[t]] == score
        if equal > 1:
            key = run_tiebreak[s_row[a]]
            for t in range(m):
                r = _row(run_order, rs, t)
                above += (run_scores[r] == score) & (run_tiebreak[r] < key)
        s_rank[a] = above


@numba.njit(cache=True)
def _ranked_rows(run_order: np.ndarray, rs: int, m: int, run_scores: np.ndarray,
                 run_tiebreak: np.ndarray) -> np.ndarray:
    """The query's rows by score descending, ties by tie-break key (allocates)."""
    if run_order.shape[0] == 0:
        rows = np.arange(rs, rs + m)
    else:
        rows = run_order[rs:rs + m].astype(np.int64)
    return _order_by_score(rows, run_scores, run_tiebreak)


@numba.njit(cache=True)
def _ordered_values(q, m, n_rel, n_judged, n_int, s_rank, s_rel, ideal, metric_codes, cutoffs,
                    threshold, gain_kind, disc, values, cum) -> None:
    """Specs of query q from its positively graded items sorted by rank (``TIES_ORDERED``)."""
    d = h = a = 0.0
    first = -1  # rank of the first relevant item
    for j in range(n_int):
        rank = s_rank[j]
        b = 1.0 if s_rel[j] >= threshold else 0.0
        d += _gain(s_rel[j], gain_kind) / disc[rank]
        h += b
        a += b * h / (rank + 1.0)
        if b > 0 and first < 0:
            first = rank
        cum[0, j], cum[1, j], cum[2, j] = d, h, a
    for s in range(metric_codes.shape[0]):
        code = metric_codes[s]
        k = _cut(code, cutoffs[s], n_rel, m)
        c = 0  # items ranked within the cut-off
        while c < n_int and s_rank[c] < k:
            c += 1
        dcg = cum[0, c - 1] if c > 0 else 0.0
        hits = cum[1, c - 1] if c > 0 else 0.0
        ap = cum[2, c - 1] if c > 0 else 0.0
        rr = 1.0 / (first + 1.0) if 0 <= first < k else 0.0
        idcg = _idcg(cutoffs[s], n_judged, ideal) if code == 0 else 0.0
        values[q, s] = _spec_value(code, k, n_rel, dcg, hits, ap, rr, 1.0 if hits > 0 else 0.0, idcg)


@numba.njit(cache=True)
def _average_values(q, ranked, m, n_rel, n_judged, shift, mask, run_items, run_scores, h_key, h_state,
                    h_rel, ideal, metric_codes, cutoffs, threshold, gain_kind, disc, values) -> None:
    """Specs of query q as expectations over the orders of tied items (``TIES_AVERAGE``)."""
    gain = np.empty(m)
    binary = np.empty(m)
    bh = np.empty(m)
    for i in range(m):
        slot = _probe(run_items[ranked[i]], q, shift, mask, h_key, h_state)
        rel = h_rel[slot]  # every run item is in the table by now (0 when unjudged)
        gain[i] = _gain(rel, gain_kind)
        binary[i] = 1.0 if rel >= threshold else 0.0
    g_start = np.empty(m, dtype=np.int64)
    g_size = np.empty(m, dtype=np.int64)
    g_rel = np.empty(m, dtype=np.int64)
    g_of = np.empty(m, dtype=np.int64)
    rel_before_group = np.empty(m, dtype=np.int64)
    first = -1
    n_groups = 0
    i = 0
    hits_before = 0
    while i < m:
        e = i + 1
        while e < m and run_scores[ranked[e]] == run_scores[ranked[i]]:
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
    # prefix sums, in place: gain -> DCG@i, binary -> hits@i, bh -> AP numerator@i
    d = h = a = 0.0
    for i in range(m):
        d += gain[i] / disc[i]
        h += binary[i]
        a += bh[i] / (i + 1.0)
        gain[i], binary[i], bh[i] = d, h, a
    for s in range(metric_codes.shape[0]):
        code = metric_codes[s]
        k = _cut(code, cutoffs[s], n_rel, m)
        last = min(k, m) - 1  # a list shorter than k keeps its last value
        rr = _expected_rr(min(k, m), first, g_start, g_size, g_rel) if code == 5 else 0.0
        hit = _expected_hit(min(k, m), g_start, g_size, g_rel, g_of, rel_before_group) if code == 6 else 0.0
        idcg = _idcg(cutoffs[s], n_judged, ideal) if code == 0 else 0.0
        values[q, s] = _spec_value(code, k, n_rel, gain[last] if last >= 0 else 0.0,
                                   binary[last] if last >= 0 else 0.0, bh[last] if last >= 0 else 0.0,
                                   rr, hit, idcg)


@numba.njit(cache=True)
def _one_query(q, run_order, run_offsets, run_items, run_scores, run_tiebreak, q_order, q_offsets,
               q_items, q_rels, metric_codes, cutoffs, threshold, gain_kind, ties, has_ndcg, count_max,
               disc, values, n_relevant, duplicate, dup_judged, h_key, h_state, h_rel, s_grades, s_ideal,
               s_row, s_rank, s_rel, cum) -> None:
    """Evaluate query ``q`` into ``values[q]``; ``h_*`` and ``s_*`` are the thread's scratch."""
    qs, rs = q_offsets[q], run_offsets[q]
    n_judged, m = q_offsets[q + 1] - qs, run_offsets[q + 1] - rs
    bits = 1
    while (1 << bits) < 2 * (n_judged + m):
        bits += 1
    mask = (1 << bits) - 1
    shift = np.uint64(64 - bits)
    unseen, seen = 2 * q, 2 * q + 1
    n_rel = 0
    n_graded = 0
    for t in range(n_judged):
        row = _row(q_order, qs, t)
        key = q_items[row]
        slot = _probe(key, q, shift, mask, h_key, h_state)
        if h_state[slot] >> 1 == q:
            dup_judged[q] = key
            continue
        rel = q_rels[row]
        h_key[slot], h_state[slot], h_rel[slot] = key, unseen, rel
        s_grades[n_graded] = rel
        n_graded += 1
        if rel >= threshold:
            n_rel += 1
    n_relevant[q] = n_rel
    if n_rel == 0:
        return
    # join: every run item is looked up, and inserted when unjudged, so that a second
    # occurrence of any item is found
    n_int = 0
    for t in range(m):
        row = _row(run_order, rs, t)
        key = run_items[row]
        slot = _probe(key, q, shift, mask, h_key, h_state)
        state = h_state[slot]
        if state == seen:
            duplicate[q] = key
        elif state == unseen:
            h_state[slot] = seen
            if h_rel[slot] > 0:  # only positively graded items move any metric
                s_row[n_int] = row
                s_rel[n_int] = h_rel[slot]
                n_int += 1
        else:
            h_key[slot], h_state[slot], h_rel[slot] = key, seen, 0.0
    if has_ndcg:
        _ideal_prefix(s_grades, n_graded, gain_kind, disc, s_ideal)
    if ties == TIES_AVERAGE:
        ranked = _ranked_rows(run_order, rs, m, run_scores, run_tiebreak)
        _average_values(q, ranked, m, n_rel, n_graded, shift, mask, run_items, run_scores, h_key, h_state,
                        h_rel, s_ideal, metric_codes, cutoffs, threshold, gain_kind, disc, values)
        return
    if n_int <= count_max:
        _rank_by_count(run_order, rs, m, run_scores, run_tiebreak, s_row, s_rank, n_int)
        for i in range(1, n_int):  # insertion sort by rank (ranks are distinct)
            r, rel = s_rank[i], s_rel[i]
            j = i - 1
            while j >= 0 and s_rank[j] > r:
                s_rank[j + 1], s_rel[j + 1] = s_rank[j], s_rel[j]
                j -= 1
            s_rank[j + 1], s_rel[j + 1] = r, rel
    else:  # many graded items: read their ranks off a sort of the whole list
        ranked = _ranked_rows(run_order, rs, m, run_scores, run_tiebreak)
        n_int = 0
        for i in range(m):
            rel = h_rel[_probe(run_items[ranked[i]], q, shift, mask, h_key, h_state)]
            if rel > 0:
                s_rank[n_int], s_rel[n_int] = i, rel
                n_int += 1
    _ordered_values(q, m, n_rel, n_graded, n_int, s_rank, s_rel, s_ideal, metric_codes, cutoffs,
                    threshold, gain_kind, disc, values, cum)


_F2 = nt.float64[:, ::1]


@numba.njit(nt.Tuple((_F2, nt.float64[::1], nt.int64[::1], nt.int64[::1]))(
    _I32, _I64, _I64, _F64, _I64, _I32, _I64, _I64, _F64, _I64, _I64, nt.float64, nt.int64, nt.int64,
    nt.int64, nt.int64), cache=True, parallel=True)
def evaluate_segments(
    run_order: np.ndarray, run_offsets: np.ndarray, run_items: np.ndarray, run_scores: np.ndarray,
    run_tiebreak: np.ndarray, q_order: np.ndarray, q_offsets: np.ndarray, q_items: np.ndarray,
    q_rels: np.ndarray, metric_codes: np.ndarray, cutoffs: np.ndarray, threshold: float,
    gain_kind: int, ties: int, n_chunks: int, count_max: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-query values of every (metric, cut-off) spec.

    Run rows and judgments come grouped by query (``*_order`` / ``*_offsets`` from
    ``group_offsets``). Returns ``(values[n_queries, n_specs], n_relevant[n_queries],
    duplicate_run_item[n_queries], duplicate_judged_item[n_queries])``; the last two are
    -1, or an item listed twice for that query (an input error). ``count_max``: see
    ``COUNT_RANKS_MAX`` (both rank paths give the same bits; tests compare them).
    """
    n_q = q_offsets.shape[0] - 1
    values = np.zeros((n_q, metric_codes.shape[0]))
    n_relevant = np.zeros(n_q)
    duplicate = np.full(n_q, -1, dtype=np.int64)
    dup_judged = np.full(n_q, -1, dtype=np.int64)
    has_ndcg = False
    for s in range(metric_codes.shape[0]):
        has_ndcg = has_ndcg or metric_codes[s] == 0
    max_run = 1
    max_judged = 1
    for q in range(n_q):
        max_run = max(max_run, run_offsets[q + 1] - run_offsets[q])
        max_judged = max(max_judged, q_offsets[q + 1] - q_offsets[q])
    disc = np.log2(np.arange(max(max_run, max_judged)) + 2.0)  # log2(1-based rank + 1)
    cap = 2
    while cap < 2 * (max_run + max_judged):
        cap *= 2
    # scratch buffers are allocated per chunk (a few per thread), not per query
    n_chunks = max(1, min(n_q, n_chunks))
    for c in numba.prange(n_chunks):
        h_key = np.empty(cap, dtype=np.int64)
        h_state = np.full(cap, -2, dtype=np.int64)  # -2 >> 1 == -1: no query's slot
        h_rel = np.empty(cap)
        s_grades = np.empty(max_judged)
        s_ideal = np.empty(max_judged)
        s_row = np.empty(max_run, dtype=np.int64)
        s_rank = np.empty(max_run, dtype=np.int64)
        s_rel = np.empty(max_run)
        cum = np.empty((3, max_run))
        for q in range(c * n_q // n_chunks, (c + 1) * n_q // n_chunks):
            _one_query(q, run_order, run_offsets, run_items, run_scores, run_tiebreak, q_order, q_offsets,
                       q_items, q_rels, metric_codes, cutoffs, threshold, gain_kind, ties, has_ndcg,
                       count_max, disc, values, n_relevant, duplicate, dup_judged, h_key, h_state, h_rel,
                       s_grades, s_ideal, s_row, s_rank, s_rel, cum)
    return values, n_relevant, duplicate, dup_judged
