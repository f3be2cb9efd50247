"""Paired comparison speed: 20 metrics over 1M queries, 1000 bootstrap resamples.

Run: ``.venv/bin/python benchmarks/compare_speed.py [--n-units N] [--n-metrics M]
[--n-resamples B]``. Prints wall and CPU time (the CPU time is the fairer figure on a shared machine) and
peak memory (tracemalloc: NumPy's buffers)
for each method through the public ``compare_models`` API, the same path the runner
and ``harness compare`` take.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import numpy as np
import pandas as pd

from harness.inference.paired import compare_models


def make_per_unit(n_units: int, n_metrics: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.Index(np.arange(n_units).astype(str), name="unit_id")
    base = rng.random((n_units, n_metrics))
    cand = np.clip(base + rng.normal(0.002, 0.05, (n_units, n_metrics)), 0, 1)
    cols = [f"metric_{j}@10" for j in range(n_metrics)]
    return {"baseline": pd.DataFrame(base, index=index, columns=cols),
            "candidate": pd.DataFrame(cand, index=index, columns=cols)}


def timed(per_unit: dict[str, pd.DataFrame], **kwargs: object) -> tuple[float, float, float, list]:
    tracemalloc.start()
    start, cpu = time.perf_counter(), time.process_time()
    rows = compare_models(per_unit, baseline="baseline", candidates=["candidate"],
                          metrics=list(per_unit["baseline"].columns), **kwargs)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, cpu, peak / 2**20, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-units", type=int, default=1_000_000)
    parser.add_argument("--n-metrics", type=int, default=20)
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--blas-threads", type=int, default=None,
                        help="limit BLAS threads (threadpoolctl); default: the library's own setting")
    args = parser.parse_args()
    if args.blas_threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.blas_threads, user_api="blas")
    per_unit = make_per_unit(args.n_units, args.n_metrics)
    input_mib = sum(t.memory_usage(deep=False).sum() for t in per_unit.values()) / 2**20
    print(f"{args.n_units:,} units x {args.n_metrics} metrics, {args.n_resamples} resamples; "
          f"inputs {input_mib:.0f} MiB (two models); BLAS threads: {args.blas_threads or 'default'}")
    cases = [("bootstrap (percentile, Poisson weights)", dict(method="bootstrap", weights="poisson")),
             ("bca (Poisson weights + jackknife)", dict(method="bca", weights="poisson")),
             ("randomization (sign flips)", dict(method="randomization")),
             ("t_test", dict(method="t_test"))]
    for label, kwargs in cases:
        seconds, cpu, peak, rows = timed(per_unit, n_resamples=args.n_resamples, seed=1, **kwargs)
        first = rows[0]
        print(f"{label:<42s} {seconds:7.2f} s wall {cpu:7.2f} s cpu   peak {peak:5.0f} MiB   "
              f"{args.n_resamples * args.n_units * args.n_metrics / seconds / 1e9:5.2f} G unit-metric-resamples/s"
              f"   e.g. {first.metric} delta {first.delta:+.5f} [{first.ci_low:+.5f}, {first.ci_high:+.5f}]")
    small = min(args.n_units, 100_000)
    sub = {k: v.iloc[:small] for k, v in per_unit.items()}
    seconds, cpu, peak, _ = timed(sub, n_resamples=args.n_resamples, seed=1, method="bootstrap",
                                  weights="multinomial")
    print(f"{'bootstrap (exact multinomial) at ' + f'{small:,} units':<42s} {seconds:7.2f} s wall {cpu:7.2f} s cpu   "
          f"peak {peak:5.0f} MiB   (exact resamples: n indices drawn and counted per resample)")


if __name__ == "__main__":
    main()
