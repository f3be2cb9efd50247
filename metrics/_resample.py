"""The bootstrap weight generator: every bootstrap of the harness draws its unit weights here.

Resampling n units with replacement is the same as weighting unit i by its count c_i; a
statistic that is a function of (weighted) column sums then needs only ``w @ parts``
per resample, a matrix product instead of a gather. Both weight schemes are defined
once, in this module, and every bootstrap uses them: paired comparisons and sum
statistics (``stats.bootstrap_sums``), statistics of weighted units such as AUC and the
calibration slope (``stats.bootstrap_weighted``), and the off-policy estimators
(``off_policy.estimate_intervals``).

Schemes
-------
``multinomial`` (the classic bootstrap, Efron 1979)
    Resample b (b = 0, 1, ..., B - 1) takes the next n indices of the stream
    ``np.random.default_rng(seed).integers(0, n, ...)``, and c_bi counts how often
    index i occurs among them. These are the resamples ``scipy.stats.bootstrap`` draws
    for the same seed (``rng=np.random.default_rng(seed)``), resample for resample. The
    stream is drawn in chunks of whole resamples (at most ``MAX_CELLS`` indices at a
    time), which leaves it unchanged.

``poisson`` (the Poisson bootstrap, Hanley & MacGibbon 2006; Chamandy et al. 2012)
    Independent Poisson(1) weights, each a pure function of (seed, b, i)::

        s_b  = mix(mix(seed + G) xor (b G + M))             # stream b (SplitMix64 key)
        z    = mix(s_b + (floor(i / 2) + 1) G)              # output floor(i/2) of stream b
        u_bi = z >> 32 if i is even else z & (2^32 - 1)     # a uniform 32-bit integer
        w_bi = #{k in 0..15 : u_bi >= T_k},  T_k = floor(2^32 F(k))

    with ``mix`` the SplitMix64 finaliser (Steele, Lea & Flood 2014), G its golden-ratio
    increment, M = 0x94D049BB133111EB, and F the Poisson(1) CDF; P(w = k) is exact to
    2^-32 (P(X > 15) < 1e-13). Because a weight depends only on (seed, b, i), the
    weights are the same whatever the blocking (by units or by resamples), the number
    of threads, or whether they are materialised (:func:`weight_blocks`, the BLAS path
    of :func:`weighted_sums`) or consumed on the fly (the fused kernel of
    :func:`weighted_sums` for a few columns): memory is bounded by one block, and the
    kernels run in parallel (numba) with results that depend on ``seed`` only.

References
----------
Efron, B. (1979). Bootstrap methods: another look at the jackknife. *Ann. Statist.* 7(1).
Hanley, J. A. & MacGibbon, B. (2006). Creating non-parametric bootstrap samples using
Poisson frequencies. *Comput. Methods Programs Biomed.* 83(1), 57-62.
Chamandy, N., Muralidharan, O., Najmi, A. & Naidu, S. (2012). Estimating uncertainty
for massive data streams. Google technical report.
Steele, G. L., Lea, D. & Flood, C. H. (2014). Fast splittable pseudorandom number
generators. *OOPSLA '14*, 453-472.

Examples
--------
The multinomial counts of resample 0 are the counts of scipy's first resample:

>>> import numpy as np

>>> from harness.metrics._resample import poisson_weights, weight_blocks

>>> _, counts = next(weight_blocks(5, 3, seed=1, scheme="multinomial"))
>>> idx = np.random.default_rng(1).integers(0, 5, (3, 5))
>>> bool((counts[0] == np.bincount(idx[0], minlength=5)).all())
True

Poisson weights do not depend on how they are blocked:

>>> whole = poisson_weights(7, 0, 4, 0, 10)
>>> part = poisson_weights(7, 2, 2, 3, 5)
>>> bool((whole[2:4, 3:8] == part).all())
True
"""

from __future__ import annotations

import math
from typing import Iterator

import numba
import numpy as np
from numba import types as nt

from harness.options import check_choice, check_integer

SCHEMES = ("multinomial", "poisson")
# Up to this many units ``weights="auto"`` uses the exact multinomial bootstrap.
MULTINOMIAL_MAX_UNITS = 20_000
# Cells (resamples x units) of one materialised weight block or index chunk.
MAX_CELLS = 4_000_000
# Up to this many columns the Poisson sums run in one fused pass (weights never stored);
# wider parts go through float32 weight blocks and a BLAS product.
FUSED_MAX_COLUMNS = 8
# Units per task of the fused kernel: a constant, so that the float64 partial sums (and
# hence the results, to the last bit) do not depend on the number of threads.
FUSED_BLOCK = 65536

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S32, _LOW32 = np.uint64(32), np.uint64(0xFFFFFFFF)
# T_k = floor(2^32 F(k)), F the Poisson(1) CDF, k = 0..15.
POISSON_THRESHOLDS = np.floor(
    np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(16)]) * 2.0**32).astype(np.uint64)
_N_THR = POISSON_THRESHOLDS.size
_T0, _T1, _T2, _T3, _T4 = (np.uint64(t) for t in POISSON_THRESHOLDS[:5])


def resolve_scheme(weights: str, n_units: int) -> str:
    """``"auto"`` -> ``"multinomial"`` up to ``MULTINOMIAL_MAX_UNITS`` units, else ``"poisson"``."""
    check_choice(weights, ("auto", *SCHEMES), name="weights")
    if weights == "auto":
        return "multinomial" if n_units <= MULTINOMIAL_MAX_UNITS else "poisson"
    return weights


def _seed_key(seed: int) -> np.uint64:
    return np.uint64(int(seed) % (1 << 64))


# --------------------------------------------------------------------------- poisson kernels


@numba.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True, inline="always")
def _stream(seed: np.uint64, b: np.uint64) -> np.uint64:
    return _mix(_mix(seed + _GOLDEN) ^ (b * _GOLDEN + _MIX2))


@numba.njit(cache=True, inline="always")
def _poisson1(u: np.uint64) -> int:
    """Poisson(1) count of a 32-bit uniform: branch-free up to 5 (P(X >= 6) = 6e-4)."""
    m = int(u >= _T0) + int(u >= _T1) + int(u >= _T2) + int(u >= _T3) + int(u >= _T4)
    if m == 5:
        while m < _N_THR and u >= POISSON_THRESHOLDS[m]:
            m += 1
    return m


@numba.njit(cache=True, inline="always")
def _draw(state: np.uint64, i: int) -> np.uint64:
    """Output floor(i/2) + 1 of the SplitMix64 stream at ``state``: 64 random bits."""
    return _mix(state + np.uint64(i // 2 + 1) * _GOLDEN)


# Explicit signatures (cached on disk): each kernel compiles once per install, at import.
_F64_2D = nt.Array(nt.float64, 2, "C", readonly=True)


@numba.njit([nt.void(nt.uint64, nt.int64, nt.int64, nt.float64[:, ::1]),
             nt.void(nt.uint64, nt.int64, nt.int64, nt.float32[:, :])],  # a block's columns: a strided view
            cache=True, parallel=True)
def _poisson_fill(seed: np.uint64, b0: int, i0: int, out: np.ndarray) -> None:
    """out[r, j] = w(seed, b0 + r, i0 + j)."""
    nb, ni = out.shape
    stop = i0 + ni
    for r in numba.prange(nb):
        state = _stream(seed, np.uint64(b0 + r))
        i = i0
        if i % 2 == 1 and i < stop:  # the odd unit of a pair cut by the block edge
            out[r, 0] = _poisson1(_draw(state, i) & _LOW32)
            i += 1
        while i + 1 < stop:
            z = _draw(state, i)
            out[r, i - i0] = _poisson1(z >> _S32)
            out[r, i + 1 - i0] = _poisson1(z & _LOW32)
            i += 2
        if i < stop:
            out[r, i - i0] = _poisson1(_draw(state, i) >> _S32)


@numba.njit(nt.float64[:, ::1](_F64_2D, nt.uint64, nt.int64, nt.int64), cache=True, parallel=True)
def _poisson_sums(cols: np.ndarray, seed: np.uint64, n_boot: int, block: int) -> np.ndarray:
    """Row b: sum_i w_bi cols[i, :] and, last, sum_i w_bi; one pass, weights not stored."""
    n, k = cols.shape
    n_blocks = (n + block - 1) // block
    n_tasks = n_blocks * n_boot
    partial = np.zeros((n_tasks, k + 1))
    for task in numba.prange(n_tasks):
        blk, b = task // n_boot, task % n_boot
        acc = np.zeros(k + 1)
        i = blk * block  # block is even: every task starts on a pair
        stop = min(n, i + block)
        # output i/2 + 1 of stream b is state + (i/2 + 1) G: step the counter, no multiply
        state = _stream(seed, np.uint64(b)) + np.uint64(i // 2) * _GOLDEN
        while i < stop:
            state += _GOLDEN
            z = _mix(state)
            for half in range(2):
                if i >= stop:
                    break
                u = (z >> _S32) if half == 0 else (z & _LOW32)
                # no branch on a count of 0 (37% of draws): a mispredicted branch costs more
                fm = float(_poisson1(u))
                acc[k] += fm
                for c in range(k):
                    acc[c] += fm * cols[i, c]
                i += 1
        partial[task] = acc
    return partial.reshape(n_blocks, n_boot, k + 1).sum(axis=0)


def poisson_weights(seed: int, b0: int, n_resamples: int, i0: int, n_units: int, *,
                    dtype: type = np.float64) -> np.ndarray:
    """Poisson weights w(seed, b, i) for resamples ``b0 .. b0 + n_resamples - 1`` and units
    ``i0 .. i0 + n_units - 1``, shape (n_resamples, n_units) (see the module docstring)."""
    out = np.empty((n_resamples, n_units), dtype=dtype)  # float64 or float32 (the kernel's signatures)
    _poisson_fill(_seed_key(seed), int(b0), int(i0), out)
    return out


# --------------------------------------------------------------------------- multinomial


def _multinomial_counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """Counts (b, n) of the next b resamples of the index stream, as float64."""
    return _tally(rng.integers(0, n, size=(b, n)), n)


@numba.njit(nt.float64[:, ::1](nt.Array(nt.int64, 2, "C", readonly=True), nt.int64), cache=True)
def _tally(draws: np.ndarray, n: int) -> np.ndarray:
    """Row r: how often each unit 0..n-1 is drawn in ``draws[r]``, counted straight into
    float64 (a row-offset bincount, then a cast, took half as long again)."""
    b, m = draws.shape
    counts = np.zeros((b, n))
    for r in range(b):
        for i in range(m):
            counts[r, draws[r, i]] += 1.0
    return counts


@numba.njit(nt.float64[:, ::1](_F64_2D, _F64_2D, nt.int64), cache=True, parallel=True)
def _count_sums(counts: np.ndarray, cols: np.ndarray, block: int) -> np.ndarray:
    """Row r: sum_i counts[r, i] cols[i, :], over blocks of ``block`` units summed in a
    fixed order: the sums of a column depend neither on the other columns nor on the
    number of threads (a BLAS product's may)."""
    b, n = counts.shape
    k = cols.shape[1]
    n_blocks = (n + block - 1) // block
    partial = np.zeros((n_blocks, b, k))
    for blk in numba.prange(n_blocks):
        acc = np.zeros((b, k))
        for i in range(blk * block, min(n, (blk + 1) * block)):
            for r in range(b):
                w = counts[r, i]
                for c in range(k):
                    acc[r, c] += w * cols[i, c]
        partial[blk] = acc
    return partial.sum(axis=0)


# --------------------------------------------------------------------------- public


def weight_blocks(n_units: int, n_resamples: int, *, seed: int, scheme: str,
                  max_cells: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """The weights of resamples ``start .. start + len(block) - 1`` as float64 rows, for
    consecutive chunks of whole resamples (at most ``max_cells`` weights a chunk).

    For statistics that need each resample's full weight vector (a weighted AUC or
    logistic fit); column sums are cheaper through :func:`weighted_sums`.
    """
    n = check_integer(n_units, name="n_units", minimum=1)
    b_total = check_integer(n_resamples, name="n_resamples", minimum=1)
    check_choice(scheme, SCHEMES, name="weights")
    chunk = max(1, min(b_total, (max_cells or MAX_CELLS) // n))
    rng = np.random.default_rng(seed) if scheme == "multinomial" else None
    for start in range(0, b_total, chunk):
        b = min(chunk, b_total - start)
        if rng is not None:
            yield start, _multinomial_counts(rng, n, b)
        else:
            yield start, poisson_weights(seed, start, b, 0, n)


def weighted_sums(parts: np.ndarray, n_resamples: int, *, seed: int, scheme: str,
                  max_cells: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Column sums of ``parts`` (n, k) under each resample's weights, and the weight totals.

    Returns ``sums`` (n_resamples, k) = sum_i w_bi parts_i and ``totals`` (n_resamples,)
    = sum_i w_bi (n for multinomial weights).

    Notes
    -----
    Multinomial: the counts of a chunk of resamples times ``parts``, in float64 (for
    k <= ``FUSED_MAX_COLUMNS`` by a parallel loop whose sums of a column do not depend
    on the other columns; BLAS above). Poisson,
    k <= ``FUSED_MAX_COLUMNS``: one fused parallel pass that draws each weight and adds
    it in, float64 throughout. Poisson, wider parts: float32 weight blocks (a block of
    units, every resample) times column-centred float32 parts (BLAS), accumulated in
    float64 and un-centred with the drawn totals; the centring keeps the float32
    products small, so the sums agree with float64 ones to ~1e-7 of the column spread.
    The weights are the same in every path. ``max_cells`` (default ``MAX_CELLS``)
    bounds the weights held in memory at once.
    """
    arr = np.asarray(parts, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    n, k = arr.shape
    b_total = check_integer(n_resamples, name="n_resamples", minimum=1)
    check_choice(scheme, SCHEMES, name="weights")
    totals = np.empty(b_total)
    if scheme == "multinomial":
        sums = np.empty((b_total, k))
        totals[:] = n
        cols = np.ascontiguousarray(arr)
        for start, counts in weight_blocks(n, b_total, seed=seed, scheme=scheme, max_cells=max_cells):
            sums[start : start + len(counts)] = (counts @ cols if k > FUSED_MAX_COLUMNS
                                                 else _count_sums(counts, cols, FUSED_BLOCK))
        return sums, totals
    if k <= FUSED_MAX_COLUMNS:
        acc = _poisson_sums(np.ascontiguousarray(arr), _seed_key(seed), b_total, FUSED_BLOCK)
        totals[:] = acc[:, k]
        return acc[:, :k].copy(), totals
    centre = arr.mean(axis=0)
    block = max(2, ((max_cells or MAX_CELLS) // b_total) // 2 * 2)
    work = np.ones((min(block, n), k + 1), dtype=np.float32)  # a ones column gives sum(w)
    acc = np.zeros((b_total, k + 1))
    w = np.empty((b_total, min(block, n)), dtype=np.float32)
    key = _seed_key(seed)
    for start in range(0, n, block):
        u = min(block, n - start)
        np.subtract(arr[start : start + u], centre, out=work[:u, :k], casting="same_kind")
        _poisson_fill(key, 0, start, w[:, :u])
        acc += w[:, :u] @ work[:u]
    totals[:] = acc[:, k]
    return acc[:, :k] + totals[:, None] * centre, totals
