"""Compiled bootstrap kernels for off-policy estimators (numba).

An estimator is a smooth function of the means of a few per-row columns (IPS: one
column ``w r``; SNIPS: ``w r`` and ``w``). A bootstrap replicate only needs the column
sums of a resample, so the kernels stream the rows once per replicate block and never
materialise a (B, n) index matrix.

- ``multinomial``: the classic bootstrap (Efron 1979): each replicate draws n row
  indices uniformly with replacement. Replicates run in parallel, each with its own
  counter-based random stream, so the result depends on ``seed`` only, not on threads.
- ``poisson``: the Poisson bootstrap (Hanley & MacGibbon 2006; Chamandy et al. 2012):
  each row enters each replicate Poisson(1) times and the means divide by the drawn
  total. Rows are read sequentially (no random gathers), which is several times faster
  at 10M rows; it converges to the multinomial bootstrap as n grows.

The random stream is SplitMix64 (Steele, Lea & Flood 2014) keyed by (seed, stream id).
"""

from __future__ import annotations

import math

import numba
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_S32, _LOW32 = np.uint64(32), np.uint64(0xFFFFFFFF)
_TWO53 = 1.0 / 9007199254740992.0
# Rows per Poisson block: a fixed constant so that results do not depend on threads.
POISSON_BLOCK = 65536
# Poisson(1) CDF at 0..15 scaled to 32-bit integers: count = #thresholds <= u; the
# quantisation changes each count's probability by < 2^-32 (P(X > 15) < 1e-13).
_POISSON1_THRESHOLDS = np.floor(
    np.cumsum([math.exp(-1.0) / math.factorial(k) for k in range(16)]) * 2.0**32
).astype(np.uint64)


@numba.njit(cache=True, inline="always")
def _mix(z: np.uint64) -> np.uint64:
    z = (z ^ (z >> _S30)) * _MIX1
    z = (z ^ (z >> _S27)) * _MIX2
    return z ^ (z >> _S31)


@numba.njit(cache=True)
def _stream_state(seed: np.uint64, stream: np.uint64) -> np.uint64:
    return _mix(_mix(seed + _GOLDEN) ^ (stream * _GOLDEN + _MIX2))


@numba.njit(cache=True, parallel=True)
def multinomial_column_means(cols: np.ndarray, n_boot: int, seed: np.uint64) -> np.ndarray:
    """Column means of ``n_boot`` multinomial resamples of the rows of ``cols`` (n, k)."""
    n, k = cols.shape
    out = np.zeros((n_boot, k))
    for b in numba.prange(n_boot):
        state = _stream_state(seed, np.uint64(b))
        acc = np.zeros(k)
        for _ in range(n):
            state += _GOLDEN
            u = (_mix(state) >> _S11) * _TWO53
            j = min(int(u * n), n - 1)
            for c in range(k):
                acc[c] += cols[j, c]
        for c in range(k):
            out[b, c] = acc[c] / n
    return out


@numba.njit(cache=True, parallel=True)
def poisson_column_means(cols: np.ndarray, n_boot: int, seed: np.uint64,
                         thresholds: np.ndarray, block: int) -> np.ndarray:
    """Column means of ``n_boot`` Poisson(1)-weighted resamples of the rows of ``cols``.

    Each 64-bit draw yields two 32-bit uniforms; a count is the number of CDF
    thresholds (scaled to 2^32) the uniform exceeds.
    """
    n, k = cols.shape
    n_blocks = (n + block - 1) // block
    n_units = n_blocks * n_boot
    sums = np.zeros((n_units, k + 1))
    n_thr = thresholds.shape[0]
    t0, t1, t2, t3, t4 = thresholds[0], thresholds[1], thresholds[2], thresholds[3], thresholds[4]
    for unit in numba.prange(n_units):
        blk, b = unit // n_boot, unit % n_boot
        state = _stream_state(seed, np.uint64(unit))
        acc = np.zeros(k + 1)
        stop = min(n, (blk + 1) * block)
        i = blk * block
        while i < stop:
            state += _GOLDEN
            z = _mix(state)
            for half in range(2):
                if i >= stop:
                    break
                u = (z >> _S32) if half == 0 else (z & _LOW32)
                # branch-free for counts 0..5 (P(X >= 6) = 6e-4), a loop beyond
                m = ((u >= t0) + (u >= t1) + (u >= t2) + (u >= t3) + (u >= t4))
                if u >= t4:
                    m = 5
                    while m < n_thr and u >= thresholds[m]:
                        m += 1
                fm = float(m)
                acc[k] += fm
                for c in range(k):
                    acc[c] += fm * cols[i, c]
                i += 1
        sums[unit] = acc
    total = sums.reshape(n_blocks, n_boot, k + 1).sum(axis=0)
    out = np.empty((n_boot, k))
    for b in range(n_boot):
        for c in range(k):
            # an all-zero draw has probability e^-n; the caller substitutes the mean
            out[b, c] = total[b, c] / total[b, k] if total[b, k] > 0 else np.nan
    return out


def bootstrap_column_means(cols: np.ndarray, *, n_boot: int, seed: int,
                           resampling: str) -> np.ndarray:
    """Dispatch to the kernel named by ``resampling``; returns (n_boot, k) column means."""
    cols = np.ascontiguousarray(cols, dtype=np.float64)
    key = np.uint64(int(seed) % (1 << 64))
    if resampling == "multinomial":
        return multinomial_column_means(cols, int(n_boot), key)
    means = poisson_column_means(cols, int(n_boot), key, _POISSON1_THRESHOLDS, POISSON_BLOCK)
    return np.where(np.isnan(means), cols.mean(axis=0), means)
