"""A/B analysis speed: N users x 20 metrics, each with a pre-period covariate (CUPED), two variants.

Run: ``.venv/bin/python benchmarks/ab_speed.py [--n-users N] [--n-metrics M] [--end-to-end]``.

Two figures:
- numerics: per-unit values (N x 2M columns) -> sufficient statistics (chunked X'X) ->
  20 CUPED-adjusted Welch effects with delta-method relative lifts; the per-unit array is
  generated chunk by chunk and reduced as it comes, so memory stays at one chunk;
- ``--end-to-end``: ``harness ab DATA --config`` on a Parquet file of N rows, written in
  chunks; the command streams it batch by batch (memory: one batch of about 64 MiB of
  values plus the interpreter and its libraries).

Wall and CPU time (CPU is the fairer figure on a shared machine) and peak memory
(tracemalloc: NumPy's buffers; ru_maxrss for the end-to-end run).

Measured 2026-12-02 on the shared 2-core development machine, OPENBLAS_NUM_THREADS=1
(with more BLAS threads than free cores, X'X slows down 10x from contention):

| users | numerics CPU | numerics peak | end to end CPU | end to end peak RSS |
|---|---|---|---|---|
| 1M | 0.6 s | 244 MiB | 10.7 s | 954 MiB |
| 3M | 1.6 s | 244 MiB | 16.3 s | 1043 MiB |
| 10M | 4.9 s | 244 MiB | 42.7 s (263 s wall, shared) | 983 MiB |

Memory does not grow with the number of users (one Parquet row group and one batch at a
time); end-to-end CPU is mostly Parquet decoding and the per-batch checks.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from harness.metrics.ab import ABMetric, Ratio, VariantMoments, add_moments, analyze_metric, variant_moments

CHUNK = 1 << 18


def chunk(rng: np.random.Generator, n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """n users: m metrics and their pre-period values (correlation ~0.7), variant codes."""
    pre = rng.gamma(2.0, 1.0, (n, m))
    arm = (rng.random(n) < 0.5).astype(np.int64)
    post = 0.7 * pre + rng.gamma(2.0, 0.5, (n, m)) + 0.01 * arm[:, None]
    return np.hstack([post, pre]), arm


def numerics(n_users: int, n_metrics: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cols = [f"m{j}" for j in range(n_metrics)] + [f"pre_m{j}" for j in range(n_metrics)]
    tracemalloc.start()
    wall = cpu = 0.0
    total: list[VariantMoments] | None = None
    for lo in range(0, n_users, CHUNK):
        values, arm = chunk(rng, min(CHUNK, n_users - lo), n_metrics)  # generation is not timed
        start, cpu0 = time.perf_counter(), time.process_time()
        part = variant_moments(values, arm, names=["control", "treatment"], columns=cols)
        total = part if total is None else [add_moments([a, b]) for a, b in zip(total, part)]
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - cpu0
    reduce_wall, reduce_cpu = wall, cpu
    start, cpu0 = time.perf_counter(), time.process_time()
    effects = [e for j in range(n_metrics)
               for e in analyze_metric(total, ABMetric(f"m{j}", Ratio(f"m{j}"), (Ratio(f"pre_m{j}"),)),
                                       control="control")]
    wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - cpu0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    reduction = np.mean([e.variance_reduction for e in effects])
    print(f"numerics: {n_users:,} users x {n_metrics} metrics + {n_metrics} covariates: wall {wall:.1f} s, "
          f"CPU {cpu:.1f} s (reduction to moments {reduce_wall:.1f} s wall / {reduce_cpu:.1f} s CPU; "
          f"data generation not timed), peak {peak / 2**20:.0f} MiB (one chunk of {CHUNK:,} users); "
          f"mean CUPED variance reduction {reduction:.2f}")


def end_to_end(n_users: int, n_metrics: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as tmp:
        cols = [f"m{j}" for j in range(n_metrics)] + [f"pre_m{j}" for j in range(n_metrics)]
        data = Path(tmp) / "exp.parquet"
        writer = None
        for lo in range(0, n_users, CHUNK):  # written in chunks (row groups of CHUNK rows)
            values, arm = chunk(rng, min(CHUNK, n_users - lo), n_metrics)
            table = pa.Table.from_pandas(pd.DataFrame(values, columns=cols).assign(
                variant=np.where(arm == 1, "treatment", "control")), preserve_index=False)
            writer = writer or pq.ParquetWriter(data, table.schema)
            writer.write_table(table)
        writer.close()
        cfg = {"name": "bench", "variants": {"control": "control", "treatments": ["treatment"]},
               "metrics": {f"m{j}": {"mean": f"m{j}", "covariate": f"pre_m{j}"} for j in range(n_metrics)},
               "gate": [{"metric": "m0", "role": "primary"}], "tracking": {"enabled": False},
               "output": str(Path(tmp) / "results")}
        (Path(tmp) / "ab.yaml").write_text(yaml.safe_dump(cfg))
        start = time.perf_counter()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        proc = subprocess.run([sys.executable, "-m", "harness.apps.cli", "ab", str(data), "--config",
                               str(Path(tmp) / "ab.yaml")], capture_output=True, text=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.perf_counter() - start
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        print(f"end to end (harness ab, exit {proc.returncode}): {n_users:,} users x {n_metrics} metrics with "
              f"CUPED: wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {after.ru_maxrss / 2**10:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-users", type=int, default=10_000_000)
    parser.add_argument("--n-metrics", type=int, default=20)
    parser.add_argument("--end-to-end", action="store_true")
    args = parser.parse_args()
    numerics(args.n_users, args.n_metrics)
    if args.end_to_end:
        end_to_end(args.n_users, args.n_metrics)


if __name__ == "__main__":
    main()
