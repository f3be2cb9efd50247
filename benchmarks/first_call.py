"""First-call latency of ``harness run`` on a fresh install, and on every later call.

A fresh install has no numba cache: the first run compiles the kernels (once: their
signatures are explicit) and writes them to the cache; later runs load them. This
script points ``NUMBA_CACHE_DIR`` at an empty folder to play the fresh install, then
times the same small evaluation (synthetic 300 users x 200 items, popularity vs a noisy
oracle, ranking metrics, paired comparison, gate) in a new process, cold then warm.

    .venv/bin/python benchmarks/first_call.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

CONFIG = {
    "name": "first-call",
    "seed": 7,
    "dataset": {"kind": "synthetic", "n_users": 300, "n_items": 200, "dim": 8},
    "models": {"popularity": {"kind": "popularity"},
               "candidate": {"kind": "oracle", "params": {"noise": 0.5}}},
    "evaluate": {"ranking": {"metrics": ["ndcg@10", "recall@[10,50]", "map@10", "mrr"]}},
    "compare": {"baseline": "popularity", "candidates": ["candidate"], "n_resamples": 500},
    "gate": [{"metric": "ndcg@10", "role": "primary", "direction": "higher"}],
    "tracking": {"enabled": False},
}


def timed_run(harness: str, folder: Path, env: dict[str, str], label: str) -> float:
    config = folder / "eval.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output": str(folder / label)}, sort_keys=False))
    start = time.perf_counter()
    proc = subprocess.run([harness, "run", str(config), "--no-progress"], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode not in (0, 1):  # 1: the gate did not pass, still a complete run
        sys.exit(f"harness run failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    harness = shutil.which("harness", path=str(Path(sys.executable).parent)) or "harness"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "NUMBA_CACHE_DIR": str(folder / "numba-cache")}
        cold = timed_run(harness, folder, env, "cold")
        warm = min(timed_run(harness, folder, env, f"warm{i}") for i in range(2))
        start = time.perf_counter()
        # the modules a ranking run loads its kernels from (harness.metrics itself loads
        # its names on first use)
        subprocess.run([sys.executable, "-c", "import harness.metrics.ranking, harness.metrics.stats"], env=env,
                       check=True)
        imported = time.perf_counter() - start
    print(f"harness run, fresh install (empty numba cache, kernels compiled): {cold:6.1f} s")
    print(f"harness run, later calls (kernels loaded from the cache)        : {warm:6.1f} s")
    print(f"  of which importing the ranking and statistics kernels, warm     : {imported:6.1f} s")
    print(f"one-time compilation cost                                       : {cold - warm:6.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
